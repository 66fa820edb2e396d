/* detector_body.h — relu_gate for one dtype (T, SUFFIX; see for_each_dtype.h). g is read
 * whatever a says, so that the select needs no branch: a compare and a mask, lanes at a time. */
int SUFFIX(mc_relu_gate)(int64_t n, const T *restrict a, const T *restrict g, T *restrict out)
{
    if (n < 0)
        return MC_ERR_ARG;
    const int nt = threads_for(n, 3 * n);
    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t i = 0; i < n; ++i)
    {
        const T pass = g[i];
        out[i] = a[i] <= 0 ? (T)0 : pass;
    }
    return MC_OK;
}
