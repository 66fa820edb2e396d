/* detector_body.h — relu_gate's entry point for one dtype (T, SUFFIX; see for_each_dtype.h): each
 * thread gates one contiguous share on the SIMD path in force. */
static void (*const SUFFIX(gates)[])(int64_t, const T *restrict, const T *restrict, T *restrict) = {
    SUFFIX(gate_generic),
#ifdef MC_X86_PATHS
    SUFFIX(gate_avx2), SUFFIX(gate_avx512),
#endif
};

int SUFFIX(mc_relu_gate)(int64_t n, const T *restrict a, const T *restrict g, T *restrict out)
{
    if (n < 0)
        return MC_ERR_ARG;
    void (*const gate)(int64_t, const T *restrict, const T *restrict, T *restrict) =
        SUFFIX(gates)[mc_simd_level()];
    const int nt = threads_for(n, 3 * n);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int64_t share = (n + omp_get_num_threads() - 1) / omp_get_num_threads();
        const int64_t lo = share * omp_get_thread_num() < n ? share * omp_get_thread_num() : n;
        const int64_t hi = lo + share < n ? lo + share : n;
        gate(hi - lo, a + lo, g + lo, out + lo);
    }
    return MC_OK;
}
