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
    flat_plan p;
    const int flat = flat_plan_make(g, 0, sizeof(T), &p);
    if (flat < 0)
        return MC_ERR_NOMEM;
    int rc = MC_OK;

    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *scratch = flat ? malloc((size_t)(2 * p.elems) * sizeof(T)) : NULL;
        const int ready = !flat || scratch;
        if (!ready) {
            #pragma omp atomic write
            rc = MC_ERR_NOMEM;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < units; ++t) {
            const int64_t n = t / O, o = t % O;
            const T *xg = x + (n * C + o / cout_g * cin_g) * X, *wo = w + o * cin_g * K;
            if (!ready)
                continue;
            if (flat)
                kr->forward_flat(g, &p, scratch, xg, wo, y + t * L);
            else
                kr->forward(g, xg, wo, y + t * L);
        }
        free(scratch);
    }
    if (flat)
        free(p.off);
    return rc;
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
    /* at stride 1 with pad <= (k - 1)*dilation, h is a c of y with the
     * kernel flipped, y padded by (k - 1)*dilation - pad: flat planes */
    mc_geometry t = *g;
    for (int a = 0; a < 3; ++a) {
        t.in[a] = g->out[a];
        t.out[a] = g->in[a];
        t.pad[a] = (g->kernel[a] - 1) * g->dilation[a] - g->pad[a];
    }
    flat_plan p;
    const int flat = flat_plan_make(&t, 1, sizeof(T), &p);
    if (flat < 0)
        return MC_ERR_NOMEM;
    int rc = MC_OK;

    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *scratch = flat ? malloc((size_t)(2 * p.elems) * sizeof(T)) : NULL;
        const int ready = !flat || scratch;
        if (!ready) {
            #pragma omp atomic write
            rc = MC_ERR_NOMEM;
        }
        #pragma omp for schedule(static)
        for (int64_t u = 0; u < units; ++u) {
            const int64_t n = u / C, c = u % C, group = c / cin_g, i = c % cin_g;
            const T *wi = w + (group * cout_g * cin_g + i) * K, *yg = y + (n * O + group * cout_g) * L;
            if (!ready)
                continue;
            if (flat)
                kr->input_grad_flat(g, &p, scratch, wi, yg, x + u * X);
            else
                kr->input_grad(g, wi, yg, x + u * X);
        }
        free(scratch);
    }
    if (flat)
        free(p.off);
    return rc;
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
    flat_plan p;
    const int flat = flat_plan_make(g, 0, sizeof(T), &p);
    if (flat < 0)
        return MC_ERR_NOMEM;
    int rc = MC_OK;

    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* two planes and K offsets' partial sums (64 bytes each) */
        T *scratch = flat ? malloc((size_t)(2 * p.elems) * sizeof(T) + (size_t)K * 64) : NULL;
        const int ready = !flat || scratch;
        if (!ready) {
            #pragma omp atomic write
            rc = MC_ERR_NOMEM;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < units; ++t) {
            const int64_t o = t / cin_g, i = t % cin_g;
            const T *xi = x + (o / cout_g * cin_g + i) * X;
            if (!ready)
                continue;
            if (flat)
                kr->weight_grad_flat(g, &p, scratch, batch, xi, y + o * L, w + t * K);
            else
                kr->weight_grad(g, batch, xi, y + o * L, w + t * K);
        }
        free(scratch);
    }
    if (flat)
        free(p.off);
    return rc;
}
