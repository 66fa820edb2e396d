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

/* One call: its geometry and arrays (in the role's argument order), the
 * kernels for this CPU, and the flat plan (conv_direct.c), NULL for rows. */
typedef struct SUFFIX(direct_job) {
    const mc_geometry *g;
    const struct SUFFIX(conv_direct_kernels) *kr;
    const flat_plan *plan;
    const T *a, *b;
    T *out;
    int64_t batch;
} SUFFIX(direct_job);

typedef void (*SUFFIX(unit_fn))(const SUFFIX(direct_job) *job, int64_t t, T *scratch);

/* A role's units [0, units) on threads_for(units, macs) threads: flat if
 * flat_plan_make(pg, flip) makes a plan (pg is g, or h's geometry as a c),
 * each thread then with scratch for two padded planes and `extra` elements,
 * else row by row. MC_ERR_NOMEM (that thread's units skipped) if a thread
 * could not have its scratch. */
static int SUFFIX(run_units)(const mc_geometry *g, const mc_geometry *pg, int flip,
                             const T *a, const T *b, T *out, int64_t batch, int64_t units,
                             int64_t macs, int64_t extra, SUFFIX(unit_fn) unit)
{
    flat_plan p;
    const int flat = flat_plan_make(pg, flip, sizeof(T), &p);
    if (flat < 0)
        return MC_ERR_NOMEM;
    const SUFFIX(direct_job) job = {g, SUFFIX(direct_kernels)[mc_simd_level()], flat ? &p : NULL,
                                    a, b, out, batch};
    const int64_t scratch = flat ? 2 * p.elems + extra : 0;
    const int nt = threads_for(units, macs);
    int rc = MC_OK;
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        T *mine = scratch > 0 ? calloc((size_t)scratch, sizeof(T)) : NULL;  /* zeros: to_padded */
        const int ready = scratch == 0 || mine;
        if (!ready) {
            #pragma omp atomic write
            rc = MC_ERR_NOMEM;
        }
        #pragma omp for schedule(static)
        for (int64_t t = 0; t < units; ++t)
            if (ready)
                unit(&job, t, mine);
        free(mine);
    }
    if (flat)
        free(p.off);
    return rc;
}

/* c: unit t = (image, output channel) writes the plane y[t]. */
static void SUFFIX(forward_unit)(const SUFFIX(direct_job) *job, int64_t t, T *scratch)
{
    const mc_geometry *g = job->g;
    const int64_t O = g->out_channels, cin_g = g->channels / g->groups, cout_g = O / g->groups;
    const int64_t n = t / O, o = t % O, K = spatial_size(g->kernel);
    const T *x = job->a + (n * g->channels + o / cout_g * cin_g) * spatial_size(g->in);
    const T *w = job->b + o * cin_g * K;
    T *y = job->out + t * spatial_size(g->out);
    if (job->plan)
        job->kr->forward_flat(g, job->plan, scratch, x, w, y);
    else
        job->kr->forward(g, x, w, y);
}

int SUFFIX(mc_conv_forward_direct)(const mc_geometry *g, int64_t batch,
                                   const T *restrict x, const T *restrict w,
                                   T *restrict y)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t units = batch * g->out_channels;
    const int64_t macs = units * (g->channels / g->groups) * spatial_size(g->kernel) * spatial_size(g->out);
    return SUFFIX(run_units)(g, g, 0, x, w, y, batch, units, macs, 0, SUFFIX(forward_unit));
}

/* h: unit t = (image, input channel) writes the plane x[t]. */
static void SUFFIX(input_grad_unit)(const SUFFIX(direct_job) *job, int64_t t, T *scratch)
{
    const mc_geometry *g = job->g;
    const int64_t C = g->channels, cin_g = C / g->groups, cout_g = g->out_channels / g->groups;
    const int64_t n = t / C, c = t % C, group = c / cin_g, i = c % cin_g;
    const T *w = job->a + (group * cout_g * cin_g + i) * spatial_size(g->kernel);
    const T *y = job->b + (n * g->out_channels + group * cout_g) * spatial_size(g->out);
    T *x = job->out + t * spatial_size(g->in);
    if (job->plan)
        job->kr->input_grad_flat(g, job->plan, scratch, w, y, x);
    else
        job->kr->input_grad(g, w, y, x);
}

int SUFFIX(mc_conv_input_grad_direct)(const mc_geometry *g, int64_t batch,
                                      const T *restrict w, const T *restrict y,
                                      T *restrict x)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t units = batch * g->channels;
    const int64_t macs = units * (g->out_channels / g->groups) * spatial_size(g->kernel) * spatial_size(g->out);
    /* where h is a c (input_grad_geometry), over flat planes of y padded
     * by (k - 1)*dilation - pad, the kernel flipped */
    mc_geometry t;
    input_grad_geometry(g, &t);  /* where it does not exist, flat_plan_make finds no plan */
    return SUFFIX(run_units)(g, &t, 1, w, y, x, batch, units, macs, 0, SUFFIX(input_grad_unit));
}

/* g: unit t = (output channel, input channel of its group) writes
 * w[t / cin_g, t % cin_g, :], summing over the whole batch itself. */
static void SUFFIX(weight_grad_unit)(const SUFFIX(direct_job) *job, int64_t t, T *scratch)
{
    const mc_geometry *g = job->g;
    const int64_t cin_g = g->channels / g->groups, cout_g = g->out_channels / g->groups;
    const int64_t o = t / cin_g, i = t % cin_g;
    const T *x = job->a + (o / cout_g * cin_g + i) * spatial_size(g->in);
    const T *y = job->b + o * spatial_size(g->out);
    T *w = job->out + t * spatial_size(g->kernel);
    if (job->plan)
        job->kr->weight_grad_flat(g, job->plan, scratch, job->batch, x, y, w);
    else
        job->kr->weight_grad(g, job->batch, x, y, w);
}

int SUFFIX(mc_conv_weight_grad_direct)(const mc_geometry *g, int64_t batch,
                                       const T *restrict x, const T *restrict y,
                                       T *restrict w)
{
    if (!conv_geometry_ok(g, batch))
        return MC_ERR_ARG;
    const int64_t K = spatial_size(g->kernel), units = g->out_channels * (g->channels / g->groups);
    /* flat, each thread also holds K offsets' 64 bytes of partial sums */
    return SUFFIX(run_units)(g, g, 0, x, y, w, batch, units, units * batch * K * spatial_size(g->out),
                             K * (64 / (int64_t)sizeof(T)), SUFFIX(weight_grad_unit));
}
