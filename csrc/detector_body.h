/* detector_body.h — relu and relu_gate's entry points for one dtype (T, SUFFIX; see
 * for_each_dtype.h): each thread runs one contiguous share on the SIMD path in force. */
typedef void (*SUFFIX(gate_loop))(int64_t, const T *restrict, const T *restrict, T *restrict);

static const SUFFIX(gate_loop) SUFFIX(relu_loops)[] = {SIMD_PATHS(SUFFIX, relu)};
static const SUFFIX(gate_loop) SUFFIX(gate_loops)[] = {SIMD_PATHS(SUFFIX, gate)};

static int SUFFIX(split)(SUFFIX(gate_loop) loop, int64_t n, const T *restrict a, const T *restrict g,
                         T *restrict out)
{
    if (n < 0)
        return MC_ERR_ARG;
    const int nt = threads_for(n, 3 * n);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
        const int64_t share = ceil_div(n, threads);
        const int64_t lo = share * me < n ? share * me : n, hi = lo + share < n ? lo + share : n;
        loop(hi - lo, a + lo, g + lo, out + lo);
    }
    return MC_OK;
}

int SUFFIX(mc_relu)(int64_t n, const T *restrict x, T *restrict y)
{
    return SUFFIX(split)(SUFFIX(relu_loops)[mc_simd_level()], n, x, x, y);
}

int SUFFIX(mc_relu_gate)(int64_t n, const T *restrict a, const T *restrict g, T *restrict out)
{
    return SUFFIX(split)(SUFFIX(gate_loops)[mc_simd_level()], n, a, g, out);
}
