/* conv_direct_body.h — the direct c, h and g entry points for one dtype:
 * argument checks, the split into single-thread work units, and OpenMP.
 * conv_direct.c includes it once per dtype with T, SUFFIX(name) and the
 * kernel table SUFFIX(direct_kernels) defined. Compiled for the portable
 * target only; the units (conv_direct_kernel.h) are the SIMD-specific part.
 *
 * Determinism: every unit owns its output slice outright and computes it in
 * a fixed order, so threads never share an accumulator and the thread count
 * changes only who computes a slice, never how. threads_for() gets the
 * multiply-add count as the work measure, so tiny problems stay serial. */

/* c: parallel over (image, output channel); unit t writes the plane y[t]. */
int SUFFIX(mc_conv_forward_direct)(const mc_geometry *g, int64_t batch,
                                   const T *restrict x, const T *restrict w,
                                   T *restrict y)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const struct SUFFIX(conv_direct_kernels) *kr = SUFFIX(direct_kernels)[mc_simd_level()];
    const int64_t C = g->channels, O = g->out_channels;
    const int64_t cin_g = C / g->groups, cout_g = O / g->groups;
    const int64_t X = spatial_size(g->in), L = spatial_size(g->out), K = spatial_size(g->kernel);
    const int64_t units = batch * O;
    const int nt = threads_for(units, units * cin_g * K * L);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t t = 0; t < units; ++t) {
        const int64_t n = t / O, o = t % O;
        kr->forward(g, x + (n * C + o / cout_g * cin_g) * X, w + o * cin_g * K, y + t * L);
    }
    return MC_OK;
}

/* h: parallel over (image, input channel); unit t writes the plane x[t]. */
int SUFFIX(mc_conv_input_grad_direct)(const mc_geometry *g, int64_t batch,
                                      const T *restrict w, const T *restrict y,
                                      T *restrict x)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const struct SUFFIX(conv_direct_kernels) *kr = SUFFIX(direct_kernels)[mc_simd_level()];
    const int64_t C = g->channels, O = g->out_channels;
    const int64_t cin_g = C / g->groups, cout_g = O / g->groups;
    const int64_t X = spatial_size(g->in), L = spatial_size(g->out), K = spatial_size(g->kernel);
    const int64_t units = batch * C;
    const int nt = threads_for(units, units * cout_g * K * L);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t t = 0; t < units; ++t) {
        const int64_t n = t / C, c = t % C, group = c / cin_g, i = c % cin_g;
        kr->input_grad(g, w + (group * cout_g * cin_g + i) * K,
                       y + (n * O + group * cout_g) * L, x + t * X);
    }
    return MC_OK;
}

/* g: parallel over (output channel, input channel of its group); unit t
 * writes w[t / cin_g, t % cin_g, :], summing over the whole batch itself. */
int SUFFIX(mc_conv_weight_grad_direct)(const mc_geometry *g, int64_t batch,
                                       const T *restrict x, const T *restrict y,
                                       T *restrict w)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const struct SUFFIX(conv_direct_kernels) *kr = SUFFIX(direct_kernels)[mc_simd_level()];
    const int64_t O = g->out_channels;
    const int64_t cin_g = g->channels / g->groups, cout_g = O / g->groups;
    const int64_t X = spatial_size(g->in), L = spatial_size(g->out), K = spatial_size(g->kernel);
    const int64_t units = O * cin_g;
    const int nt = threads_for(units, units * batch * K * L);

    #pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t t = 0; t < units; ++t) {
        const int64_t o = t / cin_g, i = t % cin_g;
        kr->weight_grad(g, batch, x + (o / cout_g * cin_g + i) * X, y + o * L, w + t * K);
    }
    return MC_OK;
}
