/* for_each_dtype.h — one kernel body, float and double: include this after
 * `#define BODY "file_body.h"`, and BODY is included twice, with T the element
 * type and SUFFIX(name) appending _f32 / _f64 to public names. */
#define T float
#define SUFFIX(name) name##_f32
#include BODY
#undef T
#undef SUFFIX

#define T double
#define SUFFIX(name) name##_f64
#include BODY
#undef T
#undef SUFFIX
#undef BODY
