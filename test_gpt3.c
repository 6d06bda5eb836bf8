/* test_gpt3.c - the tests of gpt3.h.

   Each test prints one line, "ok" or "FAIL", with the number it measured and
   the tolerance it held it to; the last line is "N passed, M failed" and the
   exit status is non-zero on any failure. Run from the repository root (the
   PyTorch fixtures are read from fixtures/), or pass the fixture folder as
   the first argument.

   The layer tests include gpt3.h's implementation, so they call the static
   layer functions directly. */
#include <stdlib.h>

/* The header's allocations go through a counting allocator: a test can
   ask for the largest single request (a small corrupt file must not make
   the loader allocate what its header claims), or make the n-th
   allocation fail (every out-of-memory path returns GPT3_ERR_NOMEM and
   leaks nothing: LeakSanitizer checks it under `make sanitize`). The
   memory is plain malloc's, so free() still frees it. */
static size_t test_alloc_largest;   /* bytes of the largest request       */
static long test_alloc_countdown = -1; /* allocations until one fails; -1: none */
static long test_alloc_count;       /* allocations so far                 */
static int test_alloc_fails(size_t bytes) {
    if (bytes > test_alloc_largest) test_alloc_largest = bytes;
    test_alloc_count++;
    return test_alloc_countdown >= 0 && test_alloc_countdown-- == 0;
}
static void *test_malloc(size_t bytes) { return test_alloc_fails(bytes) ? NULL : malloc(bytes); }
static void *test_calloc(size_t count, size_t size) {
    return test_alloc_fails(count * size) ? NULL : calloc(count, size);
}
#define GPT3_MALLOC(size) test_malloc(size)
#define GPT3_CALLOC(count, size) test_calloc(count, size)
#define GPT3_FREE(ptr) free(ptr)
#define GPT3_IMPLEMENTATION
#include "gpt3.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* aarch64's GCC 12 crashes (an internal compiler error) vectorising this
   file's max-of-differences loops at -O2 and -O3; the header, above, is
   vectorised as usual. */
#if defined(__aarch64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC optimize("no-tree-loop-vectorize")
#endif

static int tests_passed, tests_failed;
static const char *fixture_dir = "fixtures";

static void check(int ok, const char *name, const char *detail_fmt, ...) {
    va_list args;
    printf("%-4s %-46s ", ok ? "ok" : "FAIL", name);
    va_start(args, detail_fmt);
    vprintf(detail_fmt, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
    if (ok) tests_passed++;
    else tests_failed++;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void fill_normal(float *x, size_t n, float std, GPT3Rng *rng) {
    for (size_t i = 0; i < n; i++) {
        float u1 = gpt3_rng_float(rng) + 1e-7f, u2 = gpt3_rng_float(rng);
        x[i] = std * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
    }
}

static float *alloc_floats(size_t n) { return (float *)calloc(n ? n : 1, sizeof(float)); }

/* ||a - b||_2 / ||b||_2 (absolute ||a - b|| if b is all zeros). */
static double rel_error(const float *a, const float *b, size_t n) {
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        diff += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        ref += (double)b[i] * b[i];
    }
    return ref > 0.0 ? sqrt(diff / ref) : sqrt(diff);
}

/* ------------------------------------------------------------------------ */
/* Finite differences                                                       */
/*                                                                          */
/* For a scalar objective f(x) computed by the float32 forward pass, the    */
/* central difference (f(x + h e_i) - f(x - h e_i)) / (2h), evaluated in    */
/* double, approximates df/dx_i with error O(h^2) + O(float rounding / h).  */
/* The error measure is max_i |fd_i - an_i| / max_i |fd_i|: relative to the */
/* largest gradient of the tensor, so entries that are zero in exact        */
/* arithmetic do not divide noise by noise.                                 */

typedef double (*Objective)(void *ctx);

static double fd_error(float *x, size_t n, const float *analytic, Objective f,
                       void *ctx, float h) {
    double max_diff = 0.0, max_fd = 0.0;
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        x[i] = saved + h;
        double x_plus = x[i], f_plus = f(ctx);
        x[i] = saved - h;
        double x_minus = x[i], f_minus = f(ctx);
        x[i] = saved;
        double fd = (f_plus - f_minus) / (x_plus - x_minus);
        if (fabs(fd - analytic[i]) > max_diff) max_diff = fabs(fd - analytic[i]);
        if (fabs(fd) > max_fd) max_fd = fabs(fd);
    }
    return max_diff / (max_fd > 1e-12 ? max_fd : 1e-12);
}

/* The objective of the single-layer checks: f = sum_i r_i out_i for fixed
   random weights r, so that df/dout = r is the dout fed to the backward. */
static double weighted_sum(const float *out, const float *r, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * r[i];
    return s;
}

/* Layer tolerance: float32 forward, h = 1e-2 on O(1) inputs; observed
   errors are 1e-7 .. 3e-4; a wrong term in a derivative gives O(1), one
   entry 1% off gives about 2e-3. */
#define FD_H 1e-2f
#define FD_TOL 1e-3

/* ---- Matmul ---- */
/* The packed matmul's and attention's per-thread buffers, as a model
   allocates them, for sequences up to SCRATCH_MAX_T. */
#define SCRATCH_MAX_T 640
static GPT3Scratch scratch;

static void scratch_init(void) {
    int threads = gpt3__max_threads();
    scratch.threads = threads;
    scratch.floats_per_thread = gpt3__attention_scratch_floats(SCRATCH_MAX_T);
    /* room for 3 threads at least: the thread-count test runs 1, 2 and 3 */
    scratch.memory = alloc_floats((size_t)(threads > 3 ? threads : 3) * scratch.floats_per_thread);
}

/* The fast (packed, tiled, threaded) matmul against the reference, at
   shapes that are not multiples of the tiles (MR, NR) or the cache blocks
   (KC, NC, MC, both regimes of gpt3__blocks): one row, edges in every
   direction, K past one KC block in each of the three products (K = C, OC,
   N), slivers of A packed and read in place (gpt3__a_in_place). Sums in
   another order, so they agree to float rounding: 1e-5 relative to the
   size of the terms (sum |a||b|), where a wrong or missing tile is off by
   O(1). */
static double relative_error(const float *x, const float *ref, const float *scale, size_t n) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)x[i] - ref[i]) / (scale[i] + 1e-30);
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

static void matmul_case(int N, int C, int OC, double *worst) {
    size_t n_in = (size_t)N * C, n_w = (size_t)OC * C, n_out = (size_t)N * OC;
    float *inp = alloc_floats(n_in), *w = alloc_floats(n_w), *bias = alloc_floats(OC);
    float *dout = alloc_floats(n_out), *out = alloc_floats(n_out), *ref = alloc_floats(n_out);
    float *d[3], *dref[3], *scale[3];
    size_t n[3] = {n_in, n_w, (size_t)OC};
    GPT3Rng rng;
    gpt3_rng_seed(&rng, (uint64_t)N * 1000003 + C * 1009 + OC);
    fill_normal(inp, n_in, 1.0f, &rng); fill_normal(w, n_w, 1.0f, &rng);
    fill_normal(bias, OC, 1.0f, &rng); fill_normal(dout, n_out, 1.0f, &rng);
    for (int k = 0; k < 3; k++) {
        d[k] = alloc_floats(n[k]); dref[k] = alloc_floats(n[k]); scale[k] = alloc_floats(n[k]);
        fill_normal(d[k], n[k], 1.0f, &rng); /* both start from the same values: += */
        memcpy(dref[k], d[k], n[k] * sizeof(float));
    }
    gpt3__matmul_forward(out, inp, w, bias, 1, N, C, OC, &scratch);
    gpt3__matmul_forward_reference(ref, inp, w, bias, 1, N, C, OC);
    gpt3__matmul_backward(d[0], d[1], d[2], dout, inp, w, 1, N, C, OC, &scratch);
    gpt3__matmul_backward_reference(dref[0], dref[1], dref[2], dout, inp, w, 1, N, C, OC);
    /* the forward added to what out holds (dout here): = dout + the reference without bias */
    float *added = alloc_floats(n_out), *added_ref = alloc_floats(n_out);
    memcpy(added, dout, n_out * sizeof(float));
    gpt3__matmul_forward_add(added, inp, w, N, C, OC, &scratch);
    gpt3__matmul_forward_reference(added_ref, inp, w, NULL, 1, N, C, OC);
    for (size_t i = 0; i < n_out; i++) added_ref[i] += dout[i];
    /* the scale of each output: the same sums over absolute values */
    float *ain = alloc_floats(n_in), *aw = alloc_floats(n_w), *ad = alloc_floats(n_out);
    float *ascale = alloc_floats(n_out);
    for (size_t i = 0; i < n_in; i++) ain[i] = fabsf(inp[i]);
    for (size_t i = 0; i < n_w; i++) aw[i] = fabsf(w[i]);
    for (size_t i = 0; i < n_out; i++) ad[i] = fabsf(dout[i]);
    gpt3__matmul_forward_reference(ascale, ain, aw, NULL, 1, N, C, OC);
    for (int k = 0; k < 3; k++) for (size_t i = 0; i < n[k]; i++) scale[k][i] = 1.0f;
    gpt3__matmul_backward_reference(scale[0], scale[1], scale[2], ad, ain, aw, 1, N, C, OC);
    double e[5] = {relative_error(out, ref, ascale, n_out), relative_error(d[0], dref[0], scale[0], n_in),
                   relative_error(d[1], dref[1], scale[1], n_w), relative_error(d[2], dref[2], scale[2], OC),
                   relative_error(added, added_ref, ascale, n_out)};
    for (int k = 0; k < 5; k++) if (e[k] > *worst) *worst = e[k];
    free(added); free(added_ref);
    for (int k = 0; k < 3; k++) { free(d[k]); free(dref[k]); free(scale[k]); }
    free(inp); free(w); free(bias); free(dout); free(out); free(ref);
    free(ain); free(aw); free(ad); free(ascale);
}

static void test_matmul_fast(void) {
    static const int shapes[][3] = { /* N rows, C in, OC out */
        {1, 1, 1}, {1, 67, 129}, {5, 17, 3}, {8, 48, 48}, {9, 49, 47}, {7, 257, 95},
        {33, 300, 97}, {64, 513, 50}, {130, 31, 400}, {260, 96, 1}, {17, 1, 260},
        {GPT3_MC + 3, GPT3_KC + 1, GPT3_NC + 5}, {GPT3_KC + 9, 20, GPT3_KC + 7},
        {GPT3__C_ROWS + 44, GPT3_KC + 3, 100}, /* more rows than stay in L2 */
        {GPT3_MC + 3, 2 * GPT3_KC + 5, 2 * GPT3_KC + 7}, /* K (C, OC) past 1.5 blocks */
        {40, 300, 250}, /* CI's small blocks: the forward's A kept a K block at a time */
        {70, 64, 160}, /* panels 32 wide: N 160 (forward), N 64 (dinp, dweight) */
        {2 * GPT3_KC + 3, 40, 90}, /* dweight's k-major slivers read in place, K past a block */
        {100, 384, 8}, /* LoRA's x A^T: narrower than a tile, long rows */
    };
    double worst = 0.0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        matmul_case(shapes[i][0], shapes[i][1], shapes[i][2], &worst);
    check(worst < 1e-5, "matmul: packed forward (=, +=), dinp, dweight, dbias = reference at odd shapes",
          "worst relative error %.1e (tol 1e-5)", worst);
}

/* Where the CPU fuses multiply-adds, every fast product is, element by
   element, one fused multiply-add per k in k's order, from 0, for each K
   block (gpt3__blocks: one, unless K is over 1.5 KC), each block's sum
   then added to C: so builds for AVX-512 and AVX2 give the same bits (the
   README says so). Held bitwise to fmaf in a loop, for the forward, dinp
   and dweight, at shapes with edge tiles of one and two vectors, slivers
   read in place and packed, and a product narrower than a tile. */
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
static int fused_sums_equal(const float *c, const float *a, size_t a_si, size_t a_sk,
                            const float *b, size_t b_sk, size_t b_sj, int M, int N, int K) {
    int kc, nc;
    gpt3__blocks(M, K, &kc, &nc);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            float total = 0.0f;
            for (int k0 = 0; k0 < K; k0 += kc) {
                float sum = 0.0f;
                for (int k = k0; k < K && k < k0 + kc; k++)
                    sum = fmaf(a[i * a_si + k * a_sk], b[k * b_sk + j * b_sj], sum);
                total = k0 == 0 ? sum : total + sum;
            }
            if (c[(size_t)i * N + j] != total) return 0;
        }
    return 1;
}
#endif

static void test_matmul_fused(void) {
#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
    static const int shapes[][3] = {{37, 384, 112}, {20, 200, 40}, {64, 700, 300}, {9, 130, 16},
                                    {100, 384, 8}, {300, 64, 256}};
    int all = 1;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = alloc_floats((size_t)N * C), *w = alloc_floats((size_t)OC * C);
        float *dout = alloc_floats((size_t)N * OC), *out = alloc_floats((size_t)N * OC);
        float *dx = alloc_floats((size_t)N * C), *dw = alloc_floats((size_t)OC * C);
        GPT3Rng rng;
        gpt3_rng_seed(&rng, 500 + s);
        fill_normal(x, (size_t)N * C, 1.0f, &rng); fill_normal(w, (size_t)OC * C, 1.0f, &rng);
        fill_normal(dout, (size_t)N * OC, 1.0f, &rng);
        gpt3__matmul_forward(out, x, w, NULL, 1, N, C, OC, &scratch);
        gpt3__matmul_backward(dx, dw, NULL, dout, x, w, 1, N, C, OC, &scratch);
        all &= fused_sums_equal(out, x, C, 1, w, 1, C, N, OC, C);      /* x W^T: K = C */
        all &= fused_sums_equal(dx, dout, OC, 1, w, C, 1, N, C, OC);   /* dout W: K = OC */
        all &= fused_sums_equal(dw, dout, 1, OC, x, C, 1, OC, C, N);   /* dout^T x: K = N */
        free(x); free(w); free(dout); free(out); free(dx); free(dw);
    }
    check(all, "matmul: each element one fused multiply-add a k, in order (same bits on every ISA)",
          "%d shapes, forward, dinp, dweight, bitwise", (int)(sizeof(shapes) / sizeof(shapes[0])));
#endif
}

/* The fast products read their operands only where they are: each
   operand ends where a page ends, and the next page may not be read, so a
   read past the end (a vectorised loop that loads one k too far, as GCC
   12 did with a 4-row tile) crashes the test. Where there is no mmap,
   nothing to run. */
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
/* n floats that end at a page followed by one that cannot be read; *mapping
   and *bytes for munmap (NULL if mmap failed). */
static float *floats_before_guard(size_t n, void **mapping, size_t *bytes) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), data = (n * sizeof(float) + page - 1) / page * page;
    char *p = (char *)mmap(NULL, data + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *mapping = p == MAP_FAILED ? NULL : p;
    *bytes = data + page;
    if (!*mapping || mprotect(p + data, page, PROT_NONE) != 0) return NULL;
    float *x = (float *)(p + data) - n;
    for (size_t i = 0; i < n; i++) x[i] = (float)(i % 7) - 3.0f;
    return x;
}

static void test_matmul_in_bounds(void) {
    static const int shapes[][3] = {{130, 31, 400}, {9, 49, 47}, {7, 257, 95}, {70, 64, 160},
                                    {2 * GPT3_KC + 3, 40, 90}, {GPT3_MC + 3, GPT3_KC + 1, GPT3_NC + 5}};
    int all = 1;
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        void *map[3];
        size_t bytes[3];
        float *inp = floats_before_guard((size_t)N * C, &map[0], &bytes[0]);
        float *w = floats_before_guard((size_t)OC * C, &map[1], &bytes[1]);
        float *dout = floats_before_guard((size_t)N * OC, &map[2], &bytes[2]);
        float *out = alloc_floats((size_t)N * OC), *dinp = alloc_floats((size_t)N * C);
        float *dw = alloc_floats((size_t)OC * C);
        if (inp && w && dout) {
            gpt3__matmul_forward(out, inp, w, NULL, 1, N, C, OC, &scratch);
            gpt3__matmul_backward(dinp, dw, NULL, dout, inp, w, 1, N, C, OC, &scratch);
        } else {
            all = 0;
        }
        for (int k = 0; k < 3; k++) if (map[k]) munmap(map[k], bytes[k]);
        free(out); free(dinp); free(dw);
    }
    check(all, "matmul: the fast products read no float past their operands (a guard page after each)",
          "%d shapes, forward and backward", (int)(sizeof(shapes) / sizeof(shapes[0])));
}
#endif

typedef struct {
    float *out, *inp, *weight, *bias, *r;
    int B, T, C, OC;
} MatmulCase;

static double matmul_objective(void *p) {
    MatmulCase *c = (MatmulCase *)p;
    gpt3__matmul_forward(c->out, c->inp, c->weight, c->bias, c->B, c->T, c->C, c->OC, &scratch);
    return weighted_sum(c->out, c->r, (size_t)c->B * c->T * c->OC);
}

static void test_matmul_grad(void) {
    /* odd sizes: rows and columns not multiples of the blocks or of 8 */
    MatmulCase c = {0, 0, 0, 0, 0, 3, 13, 19, 70};
    size_t n_in = (size_t)c.B * c.T * c.C, n_w = (size_t)c.OC * c.C, n_out = (size_t)c.B * c.T * c.OC;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 1);
    c.out = alloc_floats(n_out); c.inp = alloc_floats(n_in); c.weight = alloc_floats(n_w);
    c.bias = alloc_floats(c.OC); c.r = alloc_floats(n_out);
    float *dinp = alloc_floats(n_in), *dw = alloc_floats(n_w), *db = alloc_floats(c.OC);
    fill_normal(c.inp, n_in, 1.0f, &rng); fill_normal(c.weight, n_w, 0.3f, &rng);
    fill_normal(c.bias, c.OC, 0.1f, &rng); fill_normal(c.r, n_out, 1.0f, &rng);
    gpt3__matmul_backward(dinp, dw, db, c.r, c.inp, c.weight, c.B, c.T, c.C, c.OC, &scratch);
    double e1 = fd_error(c.inp, n_in, dinp, matmul_objective, &c, FD_H);
    double e2 = fd_error(c.weight, n_w, dw, matmul_objective, &c, FD_H);
    double e3 = fd_error(c.bias, c.OC, db, matmul_objective, &c, FD_H);
    check(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL, "fd: matmul dinp, dweight, dbias",
          "err %.1e %.1e %.1e (tol %.0e)", e1, e2, e3, FD_TOL);
    free(c.out); free(c.inp); free(c.weight); free(c.bias); free(c.r);
    free(dinp); free(dw); free(db);
}

/* ---- LayerNorm ---- */
typedef struct {
    float *out, *mean, *rstd, *inp, *weight, *bias, *r;
    int B, T, C;
} LayerNormCase;

static double layernorm_objective(void *p) {
    LayerNormCase *c = (LayerNormCase *)p;
    gpt3__layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->weight, c->bias, c->B, c->T, c->C);
    return weighted_sum(c->out, c->r, (size_t)c->B * c->T * c->C);
}

static void test_layernorm_grad(void) {
    LayerNormCase c;
    c.B = 2; c.T = 5; c.C = 11;
    size_t n = (size_t)c.B * c.T * c.C;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 2);
    c.out = alloc_floats(n); c.inp = alloc_floats(n); c.r = alloc_floats(n);
    c.mean = alloc_floats(c.B * c.T); c.rstd = alloc_floats(c.B * c.T);
    c.weight = alloc_floats(c.C); c.bias = alloc_floats(c.C);
    float *dinp = alloc_floats(n), *dw = alloc_floats(c.C), *db = alloc_floats(c.C);
    fill_normal(c.inp, n, 1.0f, &rng); fill_normal(c.r, n, 1.0f, &rng);
    fill_normal(c.weight, c.C, 1.0f, &rng); fill_normal(c.bias, c.C, 0.5f, &rng);
    layernorm_objective(&c);
    gpt3__layernorm_backward(dinp, dw, db, c.r, c.inp, c.weight, c.mean, c.rstd, c.B, c.T, c.C);
    double e1 = fd_error(c.inp, n, dinp, layernorm_objective, &c, FD_H);
    double e2 = fd_error(c.weight, c.C, dw, layernorm_objective, &c, FD_H);
    double e3 = fd_error(c.bias, c.C, db, layernorm_objective, &c, FD_H);
    check(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL, "fd: layernorm dinp, dweight, dbias",
          "err %.1e %.1e %.1e (tol %.0e)", e1, e2, e3, FD_TOL);
    free(c.out); free(c.inp); free(c.r); free(c.mean); free(c.rstd);
    free(c.weight); free(c.bias); free(dinp); free(dw); free(db);
}

/* ---- Attention ---- */
typedef struct {
    float *out, *att, *qkv, *r;
    int B, T, C, NH, window;
    const GPT3__Dropout *drop;
    const GPT3Scratch *scratch; /* NULL: the reference path */
} AttentionCase;

static double attention_objective(void *p) {
    AttentionCase *c = (AttentionCase *)p;
    gpt3__attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->window, c->drop, 7,
                            c->scratch);
    return weighted_sum(c->out, c->r, (size_t)c->B * c->T * c->C);
}

static void test_attention_grad(const char *name, int T, int window, float dropout) {
    GPT3__Dropout drop = {99, dropout};
    AttentionCase c;
    c.B = 2; c.T = T; c.C = 12; c.NH = 3; c.window = window; c.drop = &drop; c.scratch = &scratch;
    /* att holds exactly B*NH*T*span floats: a banded layer that touched a
       dense T x T row would write out of bounds (caught by ASan). */
    size_t n_att = (size_t)c.B * c.NH * T * gpt3__attention_span(window, T);
    size_t n_qkv = (size_t)c.B * T * 3 * c.C, n_out = (size_t)c.B * T * c.C;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 3);
    c.out = alloc_floats(n_out); c.att = alloc_floats(n_att);
    c.qkv = alloc_floats(n_qkv); c.r = alloc_floats(n_out);
    float *dqkv = alloc_floats(n_qkv), *datt = alloc_floats(n_att);
    fill_normal(c.qkv, n_qkv, 1.0f, &rng); fill_normal(c.r, n_out, 1.0f, &rng);
    attention_objective(&c);
    gpt3__attention_backward(dqkv, datt, c.r, c.qkv, c.att, c.B, T, c.C, c.NH, window, c.drop, 7,
                             c.scratch);
    double e = fd_error(c.qkv, n_qkv, dqkv, attention_objective, &c, FD_H);
    check(e < FD_TOL, name, "T %d window %d: err %.1e (tol %.0e)", T, window, e, FD_TOL);
    free(c.out); free(c.att); free(c.qkv); free(c.r); free(dqkv); free(datt);
}

/* The fast attention (keys and values transposed, 64 positions a block)
   against the reference (one dot product a position): forward output and
   probabilities, and the backward, at T = 1, T past one and two blocks,
   banded and dense, head sizes 5 and 70 (not a multiple of the vector
   width; more than 64 outputs), with dropout. Same rounding tolerance as
   the matmul: 1e-5 relative. */
static void test_attention_fast(void) {
    static const int cases[][5] = { /* T, window, C, NH, dropout % */
        {1, 1, 10, 2, 0}, {70, 70, 10, 2, 0}, {130, 33, 10, 2, 20}, {67, 67, 140, 2, 0},
        {150, 150, 64, 4, 10}, {200, 100, 24, 2, 0}, {300, 300, 10, 2, 0},
        {600, 100, 24, 2, 10}, {530, 530, 12, 2, 0},
        {300, 10, 24, 2, 0}, /* band edges on 16-column steps: first key and last */
        {300, 100, 128, 2, 0}, /* heads of 64: panels 32 wide */
    };
    double worst = 0.0;
    int fast = 1; /* every case had the fast path's workspace */
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int B = 2, T = cases[k][0], W = cases[k][1], C = cases[k][2], NH = cases[k][3];
        GPT3__Dropout drop = {5, cases[k][4] / 100.0f};
        size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
        size_t n_att = (size_t)B * NH * T * gpt3__attention_span(W, T);
        float *qkv = alloc_floats(n_qkv), *dout = alloc_floats(n_out), *x[2][4];
        GPT3Rng rng;
        gpt3_rng_seed(&rng, 11 + k);
        fill_normal(qkv, n_qkv, 1.0f, &rng); fill_normal(dout, n_out, 1.0f, &rng);
        fast &= gpt3__attention_workspace(&scratch, T) != NULL;
        for (int path = 0; path < 2; path++) { /* 0: fast, 1: reference */
            const GPT3Scratch *sc = path == 0 ? &scratch : NULL;
            x[path][0] = alloc_floats(n_out); x[path][1] = alloc_floats(n_att);
            x[path][2] = alloc_floats(n_qkv); x[path][3] = alloc_floats(n_att);
            gpt3__attention_forward(x[path][0], x[path][1], qkv, B, T, C, NH, W, &drop, 3, sc);
            gpt3__attention_backward(x[path][2], x[path][3], dout, qkv, x[path][1], B, T, C, NH, W,
                                     &drop, 3, sc);
        }
        size_t n[3] = {n_out, n_att, n_qkv};
        for (int j = 0; j < 3; j++) {
            double scale = 1e-30;
            for (size_t i = 0; i < n[j]; i++) scale = fmax(scale, fabs(x[1][j][i]));
            for (size_t i = 0; i < n[j]; i++) {
                double e = fabs((double)x[0][j][i] - x[1][j][i]) / scale;
                if (e > worst || e != e) worst = e != e ? INFINITY : e;
            }
        }
        for (int path = 0; path < 2; path++) for (int j = 0; j < 4; j++) free(x[path][j]);
        free(qkv); free(dout);
    }
    check(fast && worst < 1e-5, "attention: fast (blocked matmuls) = reference, dense/banded/dropout",
          "worst error %.1e of the largest value (tol 1e-5)%s", worst,
          fast ? "" : "; the fast path had no workspace");
}

/* The banded layer must equal a dense layer whose scores outside the band
   are masked: compare with a direct O(T^2) evaluation of the definition. */
static void test_attention_band_definition(void) {
    int B = 1, T = 10, C = 8, NH = 2, W = 3, hs = C / NH;
    size_t n_qkv = (size_t)B * T * 3 * C;
    float *qkv = alloc_floats(n_qkv), *out = alloc_floats((size_t)T * C);
    float *att = alloc_floats((size_t)NH * T * W);
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 4);
    fill_normal(qkv, n_qkv, 1.0f, &rng);
    gpt3__attention_forward(out, att, qkv, B, T, C, NH, W, NULL, 0, &scratch);
    double max_err = 0.0;
    for (int h = 0; h < NH; h++) {
        for (int t = 0; t < T; t++) {
            double scores[10], sum = 0.0, maxs = -1e30;
            for (int s = 0; s < T; s++) {
                int allowed = s <= t && s > t - W;
                double dot = 0.0;
                for (int i = 0; i < hs; i++)
                    dot += (double)qkv[t * 3 * C + h * hs + i] * qkv[s * 3 * C + C + h * hs + i];
                scores[s] = allowed ? dot / sqrt((double)hs) : -INFINITY;
                if (scores[s] > maxs) maxs = scores[s];
            }
            for (int s = 0; s < T; s++) sum += exp(scores[s] - maxs);
            for (int i = 0; i < hs; i++) {
                double o = 0.0;
                for (int s = 0; s < T; s++)
                    o += exp(scores[s] - maxs) / sum * qkv[s * 3 * C + 2 * C + h * hs + i];
                double e = fabs(o - out[t * C + h * hs + i]);
                if (e > max_err) max_err = e;
            }
        }
    }
    check(max_err < 1e-5, "attention: banded = masked dense definition",
          "T %d W %d: max abs err %.1e (tol 1e-5)", T, W, max_err);
    free(qkv); free(out); free(att);
}

/* ---- GELU ---- */
typedef struct { float *out, *inp, *r; size_t n; } GeluCase;

static double gelu_objective(void *p) {
    GeluCase *c = (GeluCase *)p;
    gpt3__gelu_forward(c->out, c->inp, c->n);
    return weighted_sum(c->out, c->r, c->n);
}

static void test_gelu_grad(void) {
    GeluCase c;
    c.n = 64;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 5);
    c.out = alloc_floats(c.n); c.inp = alloc_floats(c.n); c.r = alloc_floats(c.n);
    float *dinp = alloc_floats(c.n);
    fill_normal(c.inp, c.n, 2.0f, &rng); fill_normal(c.r, c.n, 1.0f, &rng);
    gpt3__gelu_backward(dinp, c.inp, c.r, c.n);
    double e = fd_error(c.inp, c.n, dinp, gelu_objective, &c, 1e-3f);
    check(e < FD_TOL, "fd: gelu", "err %.1e (tol %.0e)", e, FD_TOL);
    free(c.out); free(c.inp); free(c.r); free(dinp);
}

/* The vectorised e^-|x| and tanh against libm in double, over their whole
   range and at the edges: e^-|x| within 2e-7 relative down to e^-87 (then
   held at e^-87), tanh within 2e-7 absolute; NaN stays NaN. */
static void test_exp_tanh(void) {
    double worst_exp = 0, worst_tanh = 0;
    for (float x = -87.0f; x <= 87.0f; x += 0.00173f) {
        double want = exp(-fabs((double)x));
        worst_exp = fmax(worst_exp, fabs(gpt3__exp_negative(x) - want) / want);
        worst_tanh = fmax(worst_tanh, fabs(gpt3__tanh(x / 8) - tanh((double)x / 8)));
    }
    int edges = gpt3__exp_negative(0.0f) == 1.0f && gpt3__exp_negative(-0.0f) == 1.0f &&
                gpt3__exp_negative(-INFINITY) > 0.0f && gpt3__exp_negative(-INFINITY) < 2e-38f &&
                isnan(gpt3__exp_negative(NAN)) && isnan(gpt3__tanh(NAN)) &&
                gpt3__tanh(INFINITY) == 1.0f && gpt3__tanh(-1e30f) == -1.0f;
    check(worst_exp < 2e-7 && worst_tanh < 2e-7 && edges, "exp and tanh: vectorised = libm",
          "exp rel err %.1e, tanh abs err %.1e (tol 2e-7), edges %s", worst_exp, worst_tanh,
          edges ? "ok" : "WRONG");
}

/* ---- Embedding (with a soft prompt of N vectors before the tokens) ---- */
typedef struct { float *out, *wte, *wpe, *prompt, *r; int *tokens; int N, B, T, C; } EncoderCase;

static double encoder_objective(void *p) {
    EncoderCase *c = (EncoderCase *)p;
    gpt3__encoder_forward(c->out, c->tokens, c->wte, c->wpe, c->prompt, c->N, c->B, c->T, c->C);
    return weighted_sum(c->out, c->r, (size_t)c->B * (c->N + c->T) * c->C);
}

static void test_encoder_grad(void) {
    int tokens[8] = {3, 1, 3, 0, 2, 3, 3, 1}; /* repeated tokens accumulate */
    for (int N = 0; N <= 2; N += 2) {
        EncoderCase c;
        c.N = N; c.B = 2; c.T = 4; c.C = 5; c.tokens = tokens;
        int V = 4, S = N + c.T;
        size_t n = (size_t)c.B * S * c.C;
        GPT3Rng rng;
        gpt3_rng_seed(&rng, 6);
        c.out = alloc_floats(n); c.r = alloc_floats(n);
        c.wte = alloc_floats((size_t)V * c.C); c.wpe = alloc_floats((size_t)S * c.C);
        c.prompt = alloc_floats((size_t)(N + 1) * c.C);
        float *dwte = alloc_floats((size_t)V * c.C), *dwpe = alloc_floats((size_t)S * c.C);
        float *dprompt = alloc_floats((size_t)(N + 1) * c.C);
        fill_normal(c.wte, (size_t)V * c.C, 1.0f, &rng); fill_normal(c.wpe, (size_t)S * c.C, 1.0f, &rng);
        fill_normal(c.prompt, (size_t)N * c.C, 1.0f, &rng);
        fill_normal(c.r, n, 1.0f, &rng);
        gpt3__encoder_backward(dwte, dwpe, dprompt, c.r, tokens, N, c.B, c.T, c.C);
        double e1 = fd_error(c.wte, (size_t)V * c.C, dwte, encoder_objective, &c, FD_H);
        double e2 = fd_error(c.wpe, (size_t)S * c.C, dwpe, encoder_objective, &c, FD_H);
        double e3 = N ? fd_error(c.prompt, (size_t)N * c.C, dprompt, encoder_objective, &c, FD_H) : 0.0;
        check(e1 < FD_TOL && e2 < FD_TOL && e3 < FD_TOL,
              N ? "fd: embedding dwte, dwpe, dprompt (a soft prompt of 2)" : "fd: embedding dwte, dwpe",
              "err %.1e %.1e %.1e (tol %.0e)", e1, e2, e3, FD_TOL);
        free(c.out); free(c.r); free(c.wte); free(c.wpe); free(c.prompt);
        free(dwte); free(dwpe); free(dprompt);
    }
}

/* ---- Softmax cross-entropy with ignored targets ---- */
typedef struct { float *losses, *lse, *logits; int *targets; int B, T, V; } LossCase;

static double loss_objective(void *p) {
    LossCase *c = (LossCase *)p;
    int count = gpt3__crossentropy_forward(c->losses, c->lse, c->logits, c->targets, c->B, c->T, c->V);
    double sum = 0.0;
    for (int i = 0; i < c->B * c->T; i++) sum += c->losses[i];
    return sum / count;
}

static void test_crossentropy_grad(void) {
    int targets[6] = {2, -1, 6, 0, -100, 6}; /* two ignored positions */
    LossCase c;
    c.B = 2; c.T = 3; c.V = 7; c.targets = targets;
    size_t n = (size_t)c.B * c.T * c.V;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 7);
    c.losses = alloc_floats(6); c.lse = alloc_floats(6); c.logits = alloc_floats(n);
    float *dlogits = alloc_floats(n);
    fill_normal(c.logits, n, 2.0f, &rng);
    int count = gpt3__crossentropy_forward(c.losses, c.lse, c.logits, targets, c.B, c.T, c.V);
    gpt3__crossentropy_backward(dlogits, c.logits, c.lse, c.losses, targets, count, c.B, c.T, c.V, 1.0f);
    double e = fd_error(c.logits, n, dlogits, loss_objective, &c, 1e-3f);
    int ignored_zero = 1;
    for (int v = 0; v < c.V; v++) ignored_zero &= dlogits[1 * c.V + v] == 0.0f && dlogits[4 * c.V + v] == 0.0f;
    check(e < FD_TOL && count == 4 && ignored_zero, "fd: cross-entropy, targets < 0 ignored",
          "N %d, err %.1e (tol %.0e), ignored rows zero: %s", count, e, FD_TOL,
          ignored_zero ? "yes" : "no");
    free(c.losses); free(c.lse); free(c.logits); free(dlogits);
}

/* A well-fitted position: the target's logit 20 above the others' (V 5),
   so l = log(1 + 4 e^-20) = 8.2e-9 and dl/dz_y = -l to 8 digits. Formed
   as lse - z_y, or as p_y - 1, in float both would be 0. Held to 1e-6
   relative against the double-precision values. */
static void test_crossentropy_small_loss(void) {
    float logits[5] = {10.0f, -10.0f, -10.0f, -10.0f, -10.0f}, dlogits[5] = {0}, loss, lse;
    int target = 0;
    gpt3__crossentropy_forward(&loss, &lse, logits, &target, 1, 1, 5);
    gpt3__crossentropy_backward(dlogits, logits, &lse, &loss, &target, 1, 1, 1, 5, 1.0f);
    double exact_loss = log1p(4.0 * exp(-20.0)), exact_grad = expm1(-exact_loss);
    double e_loss = fabs(loss - exact_loss) / exact_loss, e_grad = fabs(dlogits[0] - exact_grad) / -exact_grad;
    check(e_loss < 1e-6 && e_grad < 1e-6, "cross-entropy of a well-fitted position",
          "loss %.3e vs %.3e, dl/dz_y %.3e; rel err %.1e, %.1e (tol 1e-06)", loss, exact_loss,
          dlogits[0], e_loss, e_grad);
}

/* A test that cannot fail is a defect: the checker must see one wrong entry. */
static void test_fd_detects_error(void) {
    MatmulCase c = {0, 0, 0, 0, 0, 1, 4, 6, 5};
    size_t n_in = 24, n_w = 30, n_out = 20;
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 8);
    c.out = alloc_floats(n_out); c.inp = alloc_floats(n_in); c.weight = alloc_floats(n_w);
    c.bias = alloc_floats(5); c.r = alloc_floats(n_out);
    float *dinp = alloc_floats(n_in);
    fill_normal(c.inp, n_in, 1.0f, &rng); fill_normal(c.weight, n_w, 1.0f, &rng);
    fill_normal(c.r, n_out, 1.0f, &rng);
    gpt3__matmul_backward(dinp, NULL, NULL, c.r, c.inp, c.weight, c.B, c.T, c.C, c.OC, &scratch);
    dinp[7] *= 1.01f; /* one gradient 1% off */
    double e = fd_error(c.inp, n_in, dinp, matmul_objective, &c, FD_H);
    check(e > FD_TOL, "fd: checker flags a gradient 1% off", "err %.1e (> tol %.0e)", e, FD_TOL);
    free(c.out); free(c.inp); free(c.weight); free(c.bias); free(c.r); free(dinp);
}

/* ------------------------------------------------------------------------ */
/* The whole model                                                          */

static GPT3Config small_config(int local_window) {
    GPT3Config cfg;
    cfg.max_seq_len = 8; cfg.vocab_size = 11; cfg.num_layers = 2;
    cfg.num_heads = 2; cfg.channels = 8; cfg.local_window = local_window;
    return cfg;
}

typedef struct { GPT3 *m; const int *inputs, *targets; int B, T; } ModelCase;

static double model_objective(void *p) {
    ModelCase *c = (ModelCase *)p;
    gpt3_forward(c->m, c->inputs, c->targets, c->B, c->T);
    double sum = 0.0;
    int count = 0;
    for (int i = 0; i < c->B * c->T; i++) {
        if (c->targets[i] < 0) continue;
        sum += c->m->acts.losses[i];
        count++;
    }
    return sum / count;
}

/* Every parameter of a 2-layer model (layer 1 banded, W 3 < T 7), weights
   scaled up from the 0.02 init so that every path carries signal. */
static void test_model_grad(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int inputs[14] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7, 1, 6, 8, 2};
    int targets[14] = {5, 2, 9, -1, 3, 10, 4, 4, 7, 1, 6, -1, 2, 0};
    ModelCase c = {&m, inputs, targets, 2, 7};
    gpt3_init(&m, &cfg, 11);
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 9);
    for (size_t i = 0; i < m.num_parameters; i++) m.params[i] += 0.3f * (gpt3_rng_float(&rng) - 0.5f);
    gpt3_forward(&m, inputs, targets, 2, 7);
    gpt3_zero_grad(&m);
    gpt3_backward(&m);
    float *analytic = alloc_floats(m.num_parameters);
    memcpy(analytic, m.grads, m.num_parameters * sizeof(float));
    double worst = 0.0;
    const char *worst_name = "";
    size_t offset = 0;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        double e = fd_error(m.params + offset, m.tensor_sizes[i], analytic + offset,
                            model_objective, &c, FD_H);
        if (e > worst) { worst = e; worst_name = gpt3_tensor_name(i); }
        offset += m.tensor_sizes[i];
    }
    /* the loss is a float32 mean of ~4: its rounding / (2h) limits this */
    check(worst < 5e-3, "fd: whole model, all 16 tensors, banded layer",
          "worst err %.1e in %s (tol 5e-3)", worst, worst_name);
    free(analytic);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* PyTorch fixtures (dev/make_fixtures.py, float64 reference)               */

typedef struct {
    int B, T, K, V, P;
    float hyper[8]; /* lr, beta1, beta2, eps, weight_decay, max_norm */
    int *inputs, *targets;
    float *logits, loss, *grads, *norms, *losses, *params_after;
} Reference;

static int read_floats(FILE *f, float *x, size_t n) { return fread(x, sizeof(float), n, f) == n; }

static int read_reference(const char *path, Reference *r) {
    FILE *f = fopen(path, "rb");
    int32_t header[16];
    memset(r, 0, sizeof(*r));
    if (!f) return 0;
    int ok = fread(header, 4, 16, f) == 16 && header[0] == 0x46455247 && header[1] == 1;
    if (ok) {
        r->B = header[2]; r->T = header[3]; r->K = header[4]; r->V = header[5]; r->P = header[6];
        size_t bt = (size_t)r->B * r->T;
        r->inputs = (int *)malloc(bt * sizeof(int));
        r->targets = (int *)malloc(bt * sizeof(int));
        r->logits = alloc_floats(bt * r->V);
        r->grads = alloc_floats(r->P);
        r->norms = alloc_floats(r->K);
        r->losses = alloc_floats(r->K);
        r->params_after = alloc_floats(r->P);
        ok = read_floats(f, r->hyper, 8) && fread(r->inputs, 4, bt, f) == bt &&
             fread(r->targets, 4, bt, f) == bt && read_floats(f, r->logits, bt * r->V) &&
             read_floats(f, &r->loss, 1) && read_floats(f, r->grads, r->P) &&
             read_floats(f, r->norms, r->K) && read_floats(f, r->losses, r->K) &&
             read_floats(f, r->params_after, r->P);
    }
    fclose(f);
    return ok;
}

static void free_reference(Reference *r) {
    free(r->inputs); free(r->targets); free(r->logits); free(r->grads);
    free(r->norms); free(r->losses); free(r->params_after);
}

/* Per-tensor relative error ||ours - ref|| / ||ref||; the worst tensor.
   skip_key_bias: leave out the key slice of qkvb (see below). */
static double worst_tensor_error(const GPT3 *m, const float *ours, const float *ref,
                                 int skip_key_bias, const char **worst_name) {
    double worst = 0.0;
    size_t offset = 0, C = (size_t)m->config.channels;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        double e;
        if (skip_key_bias && strcmp(gpt3_tensor_name(i), "qkvb") == 0) {
            e = 0.0;
            for (int l = 0; l < m->config.num_layers; l++) {
                size_t q = offset + (size_t)l * 3 * C, v = q + 2 * C;
                double eq = rel_error(ours + q, ref + q, C), ev = rel_error(ours + v, ref + v, C);
                if (eq > e) e = eq;
                if (ev > e) e = ev;
            }
        } else {
            e = rel_error(ours + offset, ref + offset, m->tensor_sizes[i]);
        }
        if (e > worst) { worst = e; *worst_name = gpt3_tensor_name(i); }
        offset += m->tensor_sizes[i];
    }
    return worst;
}

/* Tolerances: relative errors of a float32 computation against float64.
   These are the committed fixtures'; dev/torch_random.py passes its own
   on the command line (`test_gpt3 --pytorch`, see main). */
static double tol_logits = 1e-5, tol_loss = 1e-6, tol_grads = 1e-4, tol_norm = 1e-5,
              tol_params = 1e-5;

/* The first sequence token by token through the KV cache: its logits at
   every position against the reference's logits of row 0 (B, T, V). */
static double kv_cache_error(GPT3 *m, const Reference *r) {
    GPT3KVCache kv;
    double diff = 0.0, ref = 0.0;
    if (gpt3_kv_init(&kv, m) != GPT3_OK) return INFINITY;
    for (int t = 0; t < r->T; t++) {
        if (gpt3_kv_forward(m, &kv, r->inputs[t]) != GPT3_OK) { gpt3_kv_free(&kv); return INFINITY; }
        for (int v = 0; v < r->V; v++) {
            double expected = r->logits[(size_t)t * r->V + v], d = kv.logits[v] - expected;
            diff += d * d;
            ref += expected * expected;
        }
    }
    gpt3_kv_free(&kv);
    return sqrt(diff / ref);
}

static void test_pytorch_fixture(const char *name) {
    char ckpt_path[512], ref_path[512], label[64];
    Reference r;
    GPT3 m;
    snprintf(ckpt_path, sizeof(ckpt_path), "%s/%s.ckpt", fixture_dir, name);
    snprintf(ref_path, sizeof(ref_path), "%s/%s.ref", fixture_dir, name);
    snprintf(label, sizeof(label), "pytorch %s: files", name);
    int rc = gpt3_load(&m, ckpt_path);
    int have_ref = read_reference(ref_path, &r);
    if (rc != GPT3_OK || !have_ref || (size_t)r.P != m.num_parameters) {
        check(0, label, "cannot read %s / %s: %s", ckpt_path, ref_path, gpt3_strerror(rc));
        if (have_ref) free_reference(&r);
        gpt3_free(&m);
        return;
    }
    size_t bt = (size_t)r.B * r.T;
    float max_norm = r.hyper[5], step1_norm = 0.0f;
    double worst_loss = 0.0, worst_norm = 0.0, e_grads = 0.0, e_logits = 0.0;
    double e_kv = kv_cache_error(&m, &r);
    const char *grad_name = "", *param_name = "";
    for (int step = 1; step <= r.K; step++) {
        rc = gpt3_forward(&m, r.inputs, r.targets, r.B, r.T);
        gpt3_zero_grad(&m);
        rc = rc ? rc : gpt3_backward(&m);
        if (rc != GPT3_OK) break;
        if (step == 1) {
            e_logits = rel_error(m.logits, r.logits, bt * r.V);
            e_grads = worst_tensor_error(&m, m.grads, r.grads, 0, &grad_name);
        }
        float norm = gpt3_clip_grad_norm(&m, max_norm);
        if (step == 1) step1_norm = norm;
        double el = fabs(m.mean_loss - r.losses[step - 1]) / r.losses[step - 1];
        double en = fabs(norm - r.norms[step - 1]) / r.norms[step - 1];
        if (el > worst_loss) worst_loss = el;
        if (en > worst_norm) worst_norm = en;
        rc = gpt3_adamw_step(&m, r.hyper[0], r.hyper[1], r.hyper[2], r.hyper[3], r.hyper[4], step);
        if (rc != GPT3_OK) break;
    }
    /* qkvb's key slice has gradient exactly 0 in exact arithmetic (a bias
       added to every key shifts each score row by a constant, which the
       softmax ignores); in float32 it is rounding noise, which Adam divides
       by its own magnitude. Its update is therefore noise in any float32
       implementation and is left out of the parameter comparison. */
    double e_params = worst_tensor_error(&m, m.params, r.params_after, 1, &param_name);
    snprintf(label, sizeof(label), "pytorch %s: logits", name);
    check(rc == GPT3_OK && e_logits < tol_logits, label, "rel err %.1e (tol %.1e)", e_logits, tol_logits);
    snprintf(label, sizeof(label), "pytorch %s: KV cache's logits, row 0", name);
    check(e_kv < tol_logits, label, "rel err %.1e (tol %.1e)", e_kv, tol_logits);
    snprintf(label, sizeof(label), "pytorch %s: loss, every step", name);
    check(rc == GPT3_OK && worst_loss < tol_loss, label, "loss %.6f vs %.6f, worst rel err %.1e (tol %.1e)",
          r.losses[0], r.loss, worst_loss, tol_loss);
    snprintf(label, sizeof(label), "pytorch %s: all 16 gradients", name);
    check(rc == GPT3_OK && e_grads < tol_grads, label, "worst rel err %.1e in %s (tol %.1e)",
          e_grads, grad_name, tol_grads);
    snprintf(label, sizeof(label), "pytorch %s: grad norm, every step", name);
    check(rc == GPT3_OK && worst_norm < tol_norm, label, "step 1 %.6f vs %.6f, worst rel err %.1e (tol %.1e)",
          step1_norm, r.norms[0], worst_norm, tol_norm);
    snprintf(label, sizeof(label), "pytorch %s: params after %d AdamW steps", name, r.K);
    check(rc == GPT3_OK && e_params < tol_params, label, "worst rel err %.1e in %s (tol %.1e)",
          e_params, param_name, tol_params);
    free_reference(&r);
    gpt3_free(&m);
}

/* ---- Fine-tuning against PyTorch (dev/make_finetune_fixtures.py) ----------
   fixtures/finetune/: one small banded model and four cases, each a mix of
   a head or the LM, LoRA, a soft prompt, freezing, distillation and FGM or
   PGD, with the first step's loss, perturbed loss and every gradient, and
   3 steps of clipping + AdamW, all in float64. The tolerances are the LM
   fixtures', but for the loss after the first step: 1e-5, as PyTorch's own
   float32 run of binary_lora is 1.7e-6 off at step 3 (Adam's first steps
   on near-zero gradients are noisy in any float32 implementation). */
typedef struct {
    int head, K, rank, N, blocks, has_teacher, adv_steps, B, T, steps;
    int sizes[4];        /* P of the model, adapters, head, prompt          */
    float hyper[16];     /* lora alpha, distill alpha, tau, epsilon, PGD alpha,
                            lr, beta1, beta2, eps, weight decay, max norm    */
    int *inputs, *lengths, *labels;
    float *teacher, *initial[4], *losses, adv_loss, *norms, *grads[4], *after[4];
} FinetuneReference;

static void free_finetune_reference(FinetuneReference *r) {
    free(r->inputs); free(r->lengths); free(r->labels); free(r->teacher);
    free(r->losses); free(r->norms);
    for (int k = 0; k < 4; k++) { free(r->initial[k]); free(r->grads[k]); free(r->after[k]); }
}

static int read_int_array(FILE *f, int **x, size_t n) {
    *x = (int *)malloc((n ? n : 1) * sizeof(int));
    return *x && fread(*x, sizeof(int), n, f) == n;
}

static int read_float_array(FILE *f, float **x, size_t n) {
    *x = alloc_floats(n);
    return *x && read_floats(f, *x, n);
}

/* V: the model's vocabulary, the width of an LM teacher's logits. */
static int read_finetune_reference(const char *path, int V, FinetuneReference *r) {
    FILE *f = fopen(path, "rb");
    int32_t h[32];
    memset(r, 0, sizeof(*r));
    if (!f) return 0;
    int ok = fread(h, 4, 32, f) == 32 && h[0] == 0x52544647 && h[1] == 1 && read_floats(f, r->hyper, 16);
    if (ok) {
        r->head = h[2]; r->K = h[3]; r->rank = h[4]; r->N = h[5]; r->blocks = h[6];
        r->has_teacher = h[7]; r->adv_steps = h[8]; r->B = h[9]; r->T = h[10]; r->steps = h[11];
        for (int k = 0; k < 4; k++) r->sizes[k] = h[12 + k];
        size_t bt = (size_t)r->B * r->T, per_token = r->head == -1 || r->head == GPT3_HEAD_TAGS;
        size_t rows = per_token ? bt : (size_t)r->B, width = r->head == -1 ? (size_t)V : (size_t)r->K;
        ok = read_int_array(f, &r->inputs, bt) && read_int_array(f, &r->lengths, r->B) &&
             read_int_array(f, &r->labels, rows) &&
             (!r->has_teacher || read_float_array(f, &r->teacher, rows * width));
        for (int k = 1; ok && k < 4; k++) ok = read_float_array(f, &r->initial[k], r->sizes[k]);
        ok = ok && read_float_array(f, &r->losses, r->steps) && read_floats(f, &r->adv_loss, 1) &&
             read_float_array(f, &r->norms, r->steps);
        for (int k = 0; ok && k < 4; k++) ok = read_float_array(f, &r->grads[k], r->sizes[k]);
        for (int k = 0; ok && k < 4; k++) ok = read_float_array(f, &r->after[k], r->sizes[k]);
    }
    fclose(f);
    return ok;
}

/* The model as the case sets it up: adapters, head and prompt attached and
   given the reference's starting values, layers frozen, distillation and
   the adversary on. */
static int setup_finetune_case(GPT3 *m, const FinetuneReference *r) {
    float *parts[GPT3__GRADIENT_PARTS];
    size_t sizes[GPT3__GRADIENT_PARTS];
    int rc = GPT3_OK;
    if (r->rank) rc = gpt3_lora_attach(m, r->rank, r->hyper[0], 1);
    if (rc == GPT3_OK && r->head >= 0) rc = gpt3_head_attach(m, r->head, r->K, 1);
    if (rc == GPT3_OK && r->N) rc = gpt3_prompt_attach(m, r->N, NULL, 0, 1);
    if (rc == GPT3_OK && r->adv_steps) rc = gpt3_set_adversarial(m, r->adv_steps, r->hyper[3], r->hyper[4]);
    if (rc != GPT3_OK) return rc;
    gpt3_freeze(m, r->blocks);
    if (r->has_teacher) gpt3_set_distillation(m, r->teacher, r->hyper[2], r->hyper[1]);
    gpt3__gradient_parts(m, parts, sizes);
    float *values[4] = {NULL, m->lora ? m->lora->params : NULL, m->head ? m->head->params : NULL,
                        m->prompt ? m->prompt->params : NULL};
    for (int k = 1; k < 4; k++) {
        if (sizes[k] != (size_t)r->sizes[k]) return GPT3_ERR_MISMATCH;
        if (sizes[k]) memcpy(values[k], r->initial[k], sizes[k] * sizeof(float));
    }
    return GPT3_OK;
}

/* Relative error of each part after the model's: adapters, head, prompt. */
static double worst_part_error(float *const ours[4], float *const ref[4], const int sizes[4], int *worst) {
    double e = 0.0;
    for (int k = 1; k < 4; k++) {
        double ek = rel_error(ours[k], ref[k], (size_t)sizes[k]);
        if (ek > e) { e = ek; *worst = k; }
    }
    return e;
}

static void test_finetune_fixture(const char *name) {
    static const char *part_names[4] = {"model", "adapters", "head", "prompt"};
    char ckpt_path[512], ref_path[512], label[96];
    FinetuneReference r;
    GPT3 m;
    snprintf(ckpt_path, sizeof(ckpt_path), "%s/finetune/model.ckpt", fixture_dir);
    snprintf(ref_path, sizeof(ref_path), "%s/finetune/%s.ref", fixture_dir, name);
    int rc = gpt3_load(&m, ckpt_path);
    int have_ref = read_finetune_reference(ref_path, m.config.vocab_size, &r);
    if (rc == GPT3_OK && have_ref && (size_t)r.sizes[0] == m.num_parameters) rc = setup_finetune_case(&m, &r);
    snprintf(label, sizeof(label), "pytorch %s: files", name);
    if (rc != GPT3_OK || !have_ref || (size_t)r.sizes[0] != m.num_parameters) {
        check(0, label, "cannot use %s / %s: %s", ckpt_path, ref_path, gpt3_strerror(rc));
        free_finetune_reference(&r);
        gpt3_free(&m);
        return;
    }
    double e_loss = 0.0, e_later = 0.0, e_norm = 0.0, e_adv = 0.0, e_model = 0.0, e_parts = 0.0;
    const char *model_name = "-";
    int part = 1;
    for (int step = 1; step <= r.steps && rc == GPT3_OK; step++) {
        rc = r.head < 0 ? gpt3_forward(&m, r.inputs, r.labels, r.B, r.T)
                        : gpt3_head_forward(&m, r.inputs, r.lengths, r.labels, r.B, r.T);
        gpt3_zero_grad(&m);
        if (rc == GPT3_OK) rc = r.head < 0 ? gpt3_backward(&m) : gpt3_head_backward(&m);
        if (rc != GPT3_OK) break;
        float loss = r.head < 0 ? m.mean_loss : m.head->mean_loss;
        double e = fabs(loss - r.losses[step - 1]) / r.losses[step - 1];
        if (step > 1) e_later = fmax(e_later, e);
        if (step == 1) {
            e_loss = e;
            float *parts[GPT3__GRADIENT_PARTS];
            size_t sizes[GPT3__GRADIENT_PARTS];
            gpt3__gradient_parts(&m, parts, sizes);
            e_model = worst_tensor_error(&m, m.grads, r.grads[0], 0, &model_name);
            e_parts = worst_part_error(parts, r.grads, r.sizes, &part);
            if (r.adv_steps) e_adv = fabs(m.adversary.loss - r.adv_loss) / r.adv_loss;
        }
        float norm = gpt3_clip_grad_norm(&m, r.hyper[10]);
        e_norm = fmax(e_norm, fabs(norm - r.norms[step - 1]) / r.norms[step - 1]);
        rc = gpt3_adamw_step(&m, r.hyper[5], r.hyper[6], r.hyper[7], r.hyper[8], r.hyper[9], step);
    }
    snprintf(label, sizeof(label), "pytorch %s: loss, every step", name);
    check(rc == GPT3_OK && e_loss < tol_loss && e_adv < tol_loss && e_later < 10 * tol_loss, label,
          "loss %.6f, perturbed %.6f: rel err %.1e, %.1e (tol %.1e); later %.1e (tol %.1e)",
          r.losses[0], r.adv_loss, e_loss, e_adv, tol_loss, e_later, 10 * tol_loss);
    snprintf(label, sizeof(label), "pytorch %s: gradients", name);
    check(rc == GPT3_OK && e_model < tol_grads && e_parts < tol_grads, label,
          "worst rel err %.1e in %s, %.1e in the %s (tol %.1e)", e_model, model_name, e_parts,
          part_names[part], tol_grads);
    snprintf(label, sizeof(label), "pytorch %s: grad norm, every step", name);
    check(rc == GPT3_OK && e_norm < tol_norm, label, "step 1 %.6f, worst rel err %.1e (tol %.1e)",
          r.norms[0], e_norm, tol_norm);
    float *parts[GPT3__GRADIENT_PARTS] = {m.params, m.lora ? m.lora->params : NULL,
                                          m.head ? m.head->params : NULL, m.prompt ? m.prompt->params : NULL};
    e_model = worst_tensor_error(&m, m.params, r.after[0], 1, &model_name);
    e_parts = worst_part_error(parts, r.after, r.sizes, &part);
    snprintf(label, sizeof(label), "pytorch %s: params after %d steps", name, r.steps);
    check(rc == GPT3_OK && e_model < tol_params && e_parts < tol_params, label,
          "worst rel err %.1e in %s, %.1e in the %s (tol %.1e)", e_model, model_name, e_parts,
          part_names[part], tol_params);
    free_finetune_reference(&r);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Training behaviour                                                       */

/* AdamW steps first .. last (the step number drives the bias correction). */
static void train_steps_from(GPT3 *m, const int *inputs, const int *targets, int B, int T,
                             int first, int last, float lr) {
    for (int step = first; step <= last; step++) {
        gpt3_forward(m, inputs, targets, B, T);
        gpt3_zero_grad(m);
        gpt3_backward(m);
        gpt3_clip_grad_norm(m, 1.0f);
        gpt3_adamw_step(m, lr, 0.9f, 0.95f, 1e-8f, 0.1f, step);
    }
}

static void train_steps(GPT3 *m, const int *inputs, const int *targets, int B, int T,
                        int steps, float lr) {
    train_steps_from(m, inputs, targets, B, T, 1, steps, lr);
}

/* x[i] += amount u, u uniform in [-1/2, 1/2) */
static void perturb(float *x, size_t n, float amount, uint64_t seed) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] += amount * (gpt3_rng_float(&rng) - 0.5f);
}

static void random_tokens(int *x, int n, int V, uint64_t seed) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) x[i] = (int)(gpt3_rng_u32(&rng) % (uint32_t)V);
}

static void test_overfit(void) {
    GPT3Config cfg;
    cfg.max_seq_len = 16; cfg.vocab_size = 32; cfg.num_layers = 2;
    cfg.num_heads = 4; cfg.channels = 32; cfg.local_window = 4;
    GPT3 m;
    int inputs[32], targets[32], steps = 0;
    random_tokens(inputs, 32, 32, 10);
    random_tokens(targets, 32, 32, 11);
    gpt3_init(&m, &cfg, 1);
    gpt3_forward(&m, inputs, targets, 2, 16);
    float first = m.mean_loss;
    while (steps < 300 && m.mean_loss > 0.05f) {
        train_steps(&m, inputs, targets, 2, 16, 10, 1e-2f);
        steps += 10;
        gpt3_forward(&m, inputs, targets, 2, 16);
    }
    check(m.mean_loss < 0.05f, "overfit one batch", "loss %.3f -> %.4f in %d steps (need < 0.05 within 300)",
          first, m.mean_loss, steps);
    gpt3_free(&m);
}

#ifdef _OPENMP
/* One forward (logits) and 3 training steps (parameters) of `cfg` at
   (B, T) on `threads` threads, from the same seed. */
static void run_on_threads(const GPT3Config *cfg, int B, int T, int threads, float **logits,
                           float **params) {
    GPT3 m;
    int n = B * T, *inputs = (int *)malloc((size_t)n * sizeof(int));
    int *targets = (int *)malloc((size_t)n * sizeof(int));
    int saved = omp_get_max_threads();
    random_tokens(inputs, n, cfg->vocab_size, 21);
    random_tokens(targets, n, cfg->vocab_size, 22);
    omp_set_num_threads(threads); /* the model's buffers are sized for it at init */
    gpt3_init(&m, cfg, 7);
    gpt3_forward(&m, inputs, targets, B, T);
    *logits = (float *)malloc((size_t)n * cfg->vocab_size * sizeof(float));
    memcpy(*logits, m.logits, (size_t)n * cfg->vocab_size * sizeof(float));
    train_steps(&m, inputs, targets, B, T, 3, 1e-3f);
    *params = (float *)malloc(m.num_parameters * sizeof(float));
    memcpy(*params, m.params, m.num_parameters * sizeof(float));
    omp_set_num_threads(saved);
    free(inputs);
    free(targets);
    gpt3_free(&m);
}

/* The packed matmul on 1, 2 and 3 threads at a shape where each thread's
   share of rows is on the other side of the cache-block choice
   (GPT3__C_ROWS) than the whole product's, and K spans several K blocks
   in every regime. */
static void test_matmul_threads(void) {
    int N = 3 * GPT3__C_ROWS / 2 + 5, C = 2 * GPT3_KC + 37, OC = 5 * GPT3_KC / 2 + 11;
    size_t n_in = (size_t)N * C, n_w = (size_t)OC * C, n_out = (size_t)N * OC;
    float *inp = alloc_floats(n_in), *w = alloc_floats(n_w), *dout = alloc_floats(n_out);
    float *result[3][3];
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 99);
    fill_normal(inp, n_in, 1.0f, &rng); fill_normal(w, n_w, 1.0f, &rng);
    fill_normal(dout, n_out, 1.0f, &rng);
    int all = scratch.threads, same = 1;
    for (int t = 0; t < 3; t++) {
        scratch.threads = t + 1; /* scratch_init made room for 3 */
        result[t][0] = alloc_floats(n_out); result[t][1] = alloc_floats(n_in);
        result[t][2] = alloc_floats(n_w);
        gpt3__matmul_forward(result[t][0], inp, w, NULL, 1, N, C, OC, &scratch);
        gpt3__matmul_backward(result[t][1], result[t][2], NULL, dout, inp, w, 1, N, C, OC, &scratch);
    }
    scratch.threads = all;
    size_t n[3] = {n_out, n_in, n_w};
    for (int t = 1; t < 3; t++)
        for (int k = 0; k < 3; k++) same = same && memcmp(result[0][k], result[t][k], n[k] * 4) == 0;
    check(same, "determinism: matmuls on 1, 2, 3 threads", "N %d, C %d, OC %d: %s", N, C, OC,
          same ? "bit-identical" : "differ");
    for (int t = 0; t < 3; t++) for (int k = 0; k < 3; k++) free(result[t][k]);
    free(inp); free(w); free(dout);
}
#endif

static void test_determinism(void) {
    GPT3Config cfg = small_config(3);
    GPT3 a, b;
    int inputs[16], targets[16];
    random_tokens(inputs, 16, cfg.vocab_size, 12);
    random_tokens(targets, 16, cfg.vocab_size, 13);
    gpt3_init(&a, &cfg, 7);
    gpt3_init(&b, &cfg, 7);
    train_steps(&a, inputs, targets, 2, 8, 5, 1e-2f);
    train_steps(&b, inputs, targets, 2, 8, 5, 1e-2f);
    int same = memcmp(a.params, b.params, a.num_parameters * sizeof(float)) == 0;
    check(same, "determinism: same seed, 5 steps", "params %s", same ? "bit-identical" : "differ");
    gpt3_free(&a);
    gpt3_free(&b);
}

#ifdef _OPENMP
/* Every output is computed by one thread in a fixed order, so the thread
   count does not change the result: tested on the "mini" preset at B 4,
   T 128, where each thread's share of a matmul's rows (256 of 512 on two
   threads) is on the other side of the cache-block choice (GPT3__C_ROWS)
   than the whole product, the MLP's K (4C = 512) spans one K block or two,
   and the attention runs over a banded and a dense layer. */
static void test_thread_count(void) {
    GPT3Config cfg;
    gpt3_preset(&cfg, "mini");
    int B = 4, T = 128;
    size_t n_logits = (size_t)B * T * cfg.vocab_size, n_params = gpt3_num_parameters(&cfg);
    float *logits[3], *params[3];
    int same_logits = 1, same_params = 1;
    for (int t = 0; t < 3; t++) run_on_threads(&cfg, B, T, t + 1, &logits[t], &params[t]);
    for (int t = 1; t < 3; t++) {
        same_logits = same_logits && memcmp(logits[0], logits[t], n_logits * 4) == 0;
        same_params = same_params && memcmp(params[0], params[t], n_params * 4) == 0;
    }
    check(same_logits && same_params, "determinism: \"mini\" B 4 T 128 on 1, 2, 3 threads",
          "logits %s, parameters after 3 steps %s", same_logits ? "bit-identical" : "differ",
          same_params ? "bit-identical" : "differ");
    for (int t = 0; t < 3; t++) { free(logits[t]); free(params[t]); }
}
#endif

/* A small dense model after one forward and backward on random tokens. */
static void model_with_grads(GPT3 *m, uint64_t seed) {
    GPT3Config cfg = small_config(0);
    int inputs[8], targets[8];
    random_tokens(inputs, 8, cfg.vocab_size, seed);
    random_tokens(targets, 8, cfg.vocab_size, seed + 1);
    gpt3_init(m, &cfg, seed);
    gpt3_forward(m, inputs, targets, 1, 8);
    gpt3_zero_grad(m);
    gpt3_backward(m);
}

static void test_grad_accumulates(void) {
    GPT3 m;
    model_with_grads(&m, 14);
    float *once = alloc_floats(m.num_parameters);
    memcpy(once, m.grads, m.num_parameters * sizeof(float));
    gpt3_backward(&m);
    /* not bit-exact: the second pass adds into the first one's sums */
    for (size_t i = 0; i < m.num_parameters; i++) once[i] *= 2.0f;
    double e = rel_error(m.grads, once, m.num_parameters);
    check(e < 1e-6, "backward adds to grads (accumulation)",
          "two backwards = 2 x one: rel err %.1e (tol 1e-6)", e);
    free(once);
    gpt3_free(&m);
}

/* Each sequence of a batch is independent of the others, and the
   activations grow when a larger (B, T) arrives: the logits of a sequence
   are the same alone at B 1 and inside a B 3 batch, before and after. */
static void test_batch_growth(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int batch[24];
    random_tokens(batch, 24, cfg.vocab_size, 16);
    gpt3_init(&m, &cfg, 5);
    size_t V = (size_t)cfg.vocab_size;
    gpt3_forward(&m, batch + 16, NULL, 1, 5); /* small first: B*T = 5 */
    float *alone = alloc_floats(5 * V);
    memcpy(alone, m.logits, 5 * V * sizeof(float));
    int rc = gpt3_forward(&m, batch, NULL, 3, 8); /* grows to 24 */
    int same = rc == GPT3_OK;
    /* sequence 2 starts at batch + 16; its first 5 positions see the same
       past as the T 5 run */
    for (size_t t = 0; t < 5 && same; t++)
        same = memcmp(m.logits + (2 * 8 + t) * V, alone + t * V, V * sizeof(float)) == 0;
    check(same && m.mean_loss == -1.0f, "activations grow with B*T; rows independent",
          "B 1 T 5 then B 3 T 8: logits %s", same ? "bit-identical" : "differ");
    free(alone);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Configs, presets, memory                                                 */

static void test_presets(void) {
    /* exact counts of our presets; the paper's Table 2.1 names beside them */
    struct { const char *name; size_t params; double paper; } table[] = {
        {"small", 125226240, 125e6},     {"medium", 355871744, 350e6},
        {"large", 760300032, 760e6},     {"xl", 1315723264, 1.3e9},
        {"2.7b", 2651553280ULL, 2.7e9},  {"6.7b", 6658404352ULL, 6.7e9},
        {"13b", 12853386240ULL, 13e9},   {"175b", 174604259328ULL, 175e9}};
    int all_ok = 1;
    char worst[128] = "";
    double worst_dev = 0.0;
    for (int i = 0; i < 8; i++) {
        GPT3Config cfg = {0, 0, 0, 0, 0, 0};
        int rc = gpt3_preset(&cfg, table[i].name);
        size_t n = gpt3_num_parameters(&cfg);
        double dev = fabs((double)n - table[i].paper) / table[i].paper;
        all_ok &= rc == GPT3_OK && n == table[i].params && dev < 0.03 &&
                  cfg.max_seq_len == 2048 && cfg.vocab_size == 50257;
        if (dev > worst_dev) {
            worst_dev = dev;
            snprintf(worst, sizeof(worst), "%s %.4gB vs paper %.3gB", table[i].name, n / 1e9,
                     table[i].paper / 1e9);
        }
    }
    check(all_ok, "presets: Table 2.1 parameter counts", "all 8 exact; largest gap to the "
          "paper's rounded figure: %s (%.1f%%, tol 3%%)", worst, 100 * worst_dev);
    GPT3Config cfg;
    int ok = gpt3_preset(&cfg, "no-such-model") == GPT3_ERR_PRESET;
    for (int i = 0; gpt3_preset_name(i); i++) {
        ok &= gpt3_preset(&cfg, gpt3_preset_name(i)) == GPT3_OK && gpt3_check_config(&cfg) == GPT3_OK;
    }
    check(ok, "presets: every name valid, unknown name rejected", "%s", gpt3_strerror(GPT3_ERR_PRESET));
}

static void test_training_bytes(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int inputs[14], targets[14];
    random_tokens(inputs, 14, cfg.vocab_size, 17);
    random_tokens(targets, 14, cfg.vocab_size, 18);
    gpt3_init(&m, &cfg, 1);
    train_steps(&m, inputs, targets, 2, 7, 1, 1e-3f);
    size_t allocated = (4 * m.num_parameters + m.acts_capacity +
                        (size_t)m.scratch.threads * m.scratch.floats_per_thread) * sizeof(float) +
                       2 * m.tokens_capacity * sizeof(int);
    size_t predicted = gpt3_training_bytes(&cfg, 2, 7);
    GPT3Config big;
    gpt3_preset(&big, "175b");
    size_t huge = gpt3_training_bytes(&big, 1, 2048);
    check(allocated == predicted && huge > (size_t)2800e9, "training_bytes = what training allocates",
          "%zu = %zu bytes; 175B at B 1, T 2048: %.2f TB", allocated, predicted, huge / 1e12);
    /* a banded layer stores (B, NH, T, W) probabilities, not (B, NH, T, T) */
    GPT3Config dense, banded;
    gpt3_preset(&dense, "mini");
    banded = dense;
    dense.local_window = 0;
    size_t saved = gpt3_training_bytes(&dense, 1, 128) - gpt3_training_bytes(&banded, 1, 128);
    size_t expected = (size_t)2 * 4 * 128 * (128 - 32) * sizeof(float); /* 2 banded layers */
    check(saved == expected, "banded layers store O(T W) attention",
          "mini at T 128, W 32: %zu bytes fewer than dense (expected %zu)", saved, expected);
    gpt3_free(&m);
}

static void test_init(void) {
    GPT3Config cfg;
    GPT3 a, b, c;
    gpt3_preset(&cfg, "mini");
    gpt3_init(&a, &cfg, 123);
    gpt3_init(&b, &cfg, 123);
    gpt3_init(&c, &cfg, 124);
    double sum = 0.0, sq = 0.0, psq = 0.0;
    size_t n = a.tensor_sizes[0], np = a.tensor_sizes[12];
    for (size_t i = 0; i < n; i++) { sum += a.w.wte[i]; sq += (double)a.w.wte[i] * a.w.wte[i]; }
    for (size_t i = 0; i < np; i++) psq += (double)a.w.fcprojw[i] * a.w.fcprojw[i];
    double std = sqrt(sq / n - (sum / n) * (sum / n)), pstd = sqrt(psq / np);
    double want_pstd = 0.02 / sqrt(2.0 * cfg.num_layers);
    int ln_ok = 1;
    for (int i = 0; i < cfg.channels; i++) ln_ok &= a.w.lnfw[i] == 1.0f && a.w.lnfb[i] == 0.0f && a.w.qkvb[i] == 0.0f;
    int same = memcmp(a.params, b.params, a.num_parameters * sizeof(float)) == 0;
    int differ = memcmp(a.params, c.params, a.num_parameters * sizeof(float)) != 0;
    /* the first values of seed 123: fixed forever, the same on every platform */
    int pinned = a.w.wte[0] == 0.0164920762f;
    check(fabs(std - 0.02) < 0.001 && fabs(pstd - want_pstd) < 0.0005 && ln_ok && same && differ,
          "init: N(0,0.02), 0.02/sqrt(2L), LN 1/0, seeded",
          "wte std %.4f, fcprojw std %.5f (want %.5f), seed repeatable %s", std, pstd,
          want_pstd, same && differ ? "yes" : "no");
    check(pinned, "init: seed 123 gives the pinned first value", "wte[0] = %.10f", a.w.wte[0]);
    gpt3_free(&a);
    gpt3_free(&b);
    gpt3_free(&c);
}

static void test_schedule_and_clip(void) {
    float peak = 6e-4f;
    float s0 = gpt3_lr_schedule(0, peak, 10, 110), s9 = gpt3_lr_schedule(9, peak, 10, 110);
    float mid = gpt3_lr_schedule(60, peak, 10, 110), end = gpt3_lr_schedule(110, peak, 10, 110);
    float later = gpt3_lr_schedule(5000, peak, 10, 110);
    int ok = fabsf(s0 - peak / 10) < 1e-9f && fabsf(s9 - peak) < 1e-9f &&
             fabsf(mid - 0.55f * peak) < 1e-8f && fabsf(end - 0.1f * peak) < 1e-9f &&
             fabsf(later - 0.1f * peak) < 1e-9f;
    check(ok, "lr schedule: warmup, cosine, 10% floor", "%.2e %.2e %.2e %.2e %.2e", s0, s9, mid, end, later);

    GPT3 m;
    model_with_grads(&m, 19);
    double sq = 0.0;
    for (size_t i = 0; i < m.num_parameters; i++) sq += (double)m.grads[i] * m.grads[i];
    float norm = gpt3_clip_grad_norm(&m, 0.1f * (float)sqrt(sq));
    double after = 0.0;
    for (size_t i = 0; i < m.num_parameters; i++) after += (double)m.grads[i] * m.grads[i];
    check(fabs(norm - sqrt(sq)) < 1e-6 * sqrt(sq) && fabs(sqrt(after) - 0.1 * sqrt(sq)) < 1e-5 * sqrt(sq),
          "clip: returns the norm, scales to max_norm", "norm %.5f -> %.5f", norm, sqrt(after));
    gpt3_free(&m);
}

/* Draw n tokens and return the worst deviation, in standard deviations,
   of a token's count from n p_v for the expected distribution p. */
static double sample_deviation(GPT3Sampler *s, const float *logits, const double *p, int V, int n) {
    int counts[8] = {0};
    double worst = 0.0;
    for (int i = 0; i < n; i++) counts[gpt3_sampler_sample(s, logits)]++;
    for (int v = 0; v < V; v++) {
        double dev = p[v] > 0 ? fabs(counts[v] - n * p[v]) / sqrt(n * p[v] * (1 - p[v]) + 1e-9)
                              : (counts[v] > 0 ? 1e9 : 0.0);
        if (dev > worst) worst = dev;
    }
    return worst;
}

static void test_sampler(void) {
    float logits[5] = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
    double p[5], z = 0.0, top2[5] = {0}, nucleus[5] = {0};
    for (int v = 0; v < 5; v++) z += exp(logits[v]);
    for (int v = 0; v < 5; v++) p[v] = exp(logits[v]) / z;
    /* top-k 2: tokens 2 and 1 renormalised; top-p 0.8: 2, 1, 4 cover
       0.55 + 0.20 + 0.12 = 0.87 >= 0.8, 2 and 1 alone only 0.75 */
    top2[2] = p[2] / (p[2] + p[1]); top2[1] = p[1] / (p[2] + p[1]);
    double mass = p[2] + p[1] + p[4];
    nucleus[2] = p[2] / mass; nucleus[1] = p[1] / mass; nucleus[4] = p[4] / mass;
    GPT3Sampler full, k2, p08, greedy;
    gpt3_sampler_init(&full, 5, 1.0f, 0, 1.0f, 21);
    gpt3_sampler_init(&k2, 5, 1.0f, 2, 1.0f, 22);
    gpt3_sampler_init(&p08, 5, 1.0f, 0, 0.8f, 23);
    gpt3_sampler_init(&greedy, 5, 0.0f, 0, 1.0f, 24);
    double d1 = sample_deviation(&full, logits, p, 5, 40000);
    double d2 = sample_deviation(&k2, logits, top2, 5, 40000);
    double d3 = sample_deviation(&p08, logits, nucleus, 5, 40000);
    int ok_greedy = gpt3_sampler_sample(&greedy, logits) == 2 && gpt3_sampler_sample(&greedy, NULL) == -1;
    check(d1 < 5 && d2 < 5 && d3 < 5 && ok_greedy, "sampler: softmax, top-k, top-p, greedy",
          "worst deviation %.1f, %.1f, %.1f sd (tol 5; a token outside top-k/p: 1e9)", d1, d2, d3);
    GPT3Sampler bad;
    int rc = gpt3_sampler_init(&bad, 5, 1.0f, -1, 1.0f, 1);
    check(rc == GPT3_ERR_ARGUMENT && gpt3_sampler_init(&bad, 5, 1.0f, 0, 0.0f, 1) == GPT3_ERR_ARGUMENT,
          "sampler: top_k < 0, top_p <= 0 rejected", "-> %s", gpt3_strerror(rc));
    gpt3_sampler_free(&full); gpt3_sampler_free(&k2); gpt3_sampler_free(&p08); gpt3_sampler_free(&greedy);
}

/* Logits through the KV cache, one token at a time, must match a full
   forward at every position: dense, and banded past the window; with
   LoRA adapters of rank lora_rank (0: none) that are not merged. */
static void test_kv_cache(const char *label, int local_window, int lora_rank) {
    GPT3Config cfg = small_config(local_window);
    cfg.num_layers = 3;
    cfg.max_seq_len = 12;
    GPT3 m;
    GPT3KVCache kv;
    int tokens[12];
    random_tokens(tokens, 12, cfg.vocab_size, 30);
    gpt3_init(&m, &cfg, 31);
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 32);
    for (size_t i = 0; i < m.num_parameters; i++) m.params[i] += 0.2f * (gpt3_rng_float(&rng) - 0.5f);
    if (lora_rank) {
        gpt3_lora_attach(&m, lora_rank, 4.0f, 33);
        perturb(m.lora->params, m.lora->num_parameters, 0.3f, 34); /* B != 0: the adapters count */
    }
    gpt3_forward(&m, tokens, NULL, 1, 12);
    gpt3_kv_init(&kv, &m);
    double worst = 0.0;
    int rc = GPT3_OK;
    for (int t = 0; t < 12 && rc == GPT3_OK; t++) {
        rc = gpt3_kv_forward(&m, &kv, tokens[t]);
        double e = rel_error(kv.logits, m.logits + (size_t)t * cfg.vocab_size, cfg.vocab_size);
        if (e > worst) worst = e;
    }
    int full = gpt3_kv_forward(&m, &kv, tokens[0]);
    check(rc == GPT3_OK && worst < 1e-5 && full == GPT3_ERR_SEQ_LEN, label,
          "12 positions, W %d: worst rel err %.1e (tol 1e-5); position 13 -> %s", local_window,
          worst, gpt3_strerror(full));
    gpt3_kv_free(&kv);
    gpt3_free(&m);
}


/* A window of T or more is no window at all: a "banded" layer then sees
   every earlier position, so the model must be exactly the dense one, for
   any window up to INT_MAX (from a checkpoint's header or --window), with
   no arithmetic on it overflowing. T 300 spans two query blocks. A window
   of T - 1 must differ, or the test could not fail. */
static GPT3Config window_config(int window) {
    GPT3Config cfg;
    cfg.max_seq_len = 320; cfg.vocab_size = 50; cfg.num_layers = 2;
    cfg.num_heads = 2; cfg.channels = 16; cfg.local_window = window;
    return cfg;
}

static void window_case(int window, const int *tokens, int T, float **logits, float **grads,
                        float **kv_logits) {
    GPT3Config cfg = window_config(window);
    GPT3 m;
    GPT3KVCache kv;
    gpt3_init(&m, &cfg, 40);
    size_t n_logits = (size_t)T * cfg.vocab_size;
    *logits = (float *)malloc(n_logits * sizeof(float));
    *grads = (float *)malloc(m.num_parameters * sizeof(float));
    *kv_logits = (float *)malloc(n_logits * sizeof(float));
    gpt3_forward(&m, tokens, tokens + 1, 1, T);
    gpt3_zero_grad(&m);
    gpt3_backward(&m);
    memcpy(*logits, m.logits, n_logits * sizeof(float));
    memcpy(*grads, m.grads, m.num_parameters * sizeof(float));
    gpt3_kv_init(&kv, &m);
    for (int t = 0; t < T; t++) {
        gpt3_kv_forward(&m, &kv, tokens[t]);
        memcpy(*kv_logits + (size_t)t * cfg.vocab_size, kv.logits, cfg.vocab_size * sizeof(float));
    }
    gpt3_kv_free(&kv);
    gpt3_free(&m);
}

static void test_huge_window(void) {
    enum { T = 300, V = 50, CASES = 6 };
    static const int windows[CASES] = {0, T, T + 1, 2147483646, 2147483647, T - 1};
    int tokens[T + 1];
    float *logits[CASES], *grads[CASES], *kv_logits[CASES];
    random_tokens(tokens, T + 1, V, 41);
    for (int i = 0; i < CASES; i++) window_case(windows[i], tokens, T, &logits[i], &grads[i], &kv_logits[i]);
    GPT3Config cfg = window_config(0);
    size_t n_params = gpt3_num_parameters(&cfg);
    int same = 1, narrower_differs;
    for (int i = 1; i < CASES - 1; i++)
        same = same && memcmp(logits[0], logits[i], (size_t)T * V * 4) == 0 &&
               memcmp(grads[0], grads[i], n_params * 4) == 0 &&
               memcmp(kv_logits[0], kv_logits[i], (size_t)T * V * 4) == 0;
    narrower_differs = memcmp(logits[0], logits[CASES - 1], (size_t)T * V * 4) != 0;
    check(same && narrower_differs, "attention: a window >= T is exactly dense",
          "W = T, T + 1, 2^31 - 2, 2^31 - 1 at T %d: logits, gradients, KV cache %s; W = T - 1 %s",
          T, same ? "bit-identical to dense" : "DIFFER from dense",
          narrower_differs ? "differs" : "does NOT differ");
    for (int i = 0; i < CASES; i++) { free(logits[i]); free(grads[i]); free(kv_logits[i]); }
}

/* ------------------------------------------------------------------------ */
/* Checkpoints and bad input                                                */

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = (unsigned char *)malloc(*n);
    if (data && fread(data, 1, *n, f) != *n) { free(data); data = NULL; }
    fclose(f);
    return data;
}

static void test_checkpoint_roundtrip(void) {
    GPT3Config cfg = small_config(3);
    GPT3 a, b;
    const char *path = "test_roundtrip.ckpt";
    gpt3_init(&a, &cfg, 99);
    int rc1 = gpt3_save(&a, path), rc2 = gpt3_load(&b, path);
    int same = rc1 == GPT3_OK && rc2 == GPT3_OK && b.num_parameters == a.num_parameters &&
               memcmp(&a.config, &b.config, sizeof(cfg)) == 0 &&
               memcmp(a.params, b.params, a.num_parameters * sizeof(float)) == 0;
    size_t n = 0;
    unsigned char *bytes = read_all(path, &n);
    int layout = bytes && n == 1024 + 4 * a.num_parameters && memcmp(bytes, "GPT3", 4) == 0 &&
                 bytes[4] == 1 && bytes[28] == 3; /* version 1, local_window 3 */
    FILE *tmp = fopen("test_roundtrip.ckpt.tmp", "rb");
    check(same && layout && !tmp, "checkpoint: save/load bit-exact, layout",
          "%zu bytes, header \"GPT3\" v1, no temporary left", n);
    if (tmp) fclose(tmp);
    free(bytes);
    gpt3_free(&a);
    gpt3_free(&b);
    remove(path);
}

/* A checkpoint in bytes, with one header int changed. */
static void expect_load_error(const char *label, const unsigned char *data, size_t n, int want) {
    GPT3 m;
    const char *path = "test_bad.ckpt";
    write_bytes(path, data, n);
    int rc = gpt3_load(&m, path);
    check(rc == want && m.params == NULL, label, "-> %s", gpt3_strerror(rc));
    gpt3_free(&m);
    remove(path);
}

static void test_bad_checkpoints(void) {
    GPT3Config cfg = small_config(0);
    GPT3 m;
    size_t n = 0;
    gpt3_init(&m, &cfg, 1);
    gpt3_save(&m, "test_good.ckpt");
    unsigned char *good = read_all("test_good.ckpt", &n);
    unsigned char *bad = (unsigned char *)malloc(n);
    remove("test_good.ckpt");
    if (!good || !bad) { check(0, "checkpoint: bad files", "setup failed"); free(good); free(bad); return; }

    GPT3 missing;
    int rc = gpt3_load(&missing, "no/such/dir/model.ckpt");
    check(rc == GPT3_ERR_OPEN, "checkpoint: missing file", "-> %s", gpt3_strerror(rc));
    expect_load_error("checkpoint: empty file", good, 0, GPT3_ERR_TRUNCATED);
    expect_load_error("checkpoint: truncated in the magic", good, 3, GPT3_ERR_TRUNCATED);
    expect_load_error("checkpoint: truncated in the header", good, 100, GPT3_ERR_TRUNCATED);
    expect_load_error("checkpoint: header only", good, 1024, GPT3_ERR_TRUNCATED);
    expect_load_error("checkpoint: one float short", good, n - 4, GPT3_ERR_TRUNCATED);
    memcpy(bad, good, n);
    memcpy(bad, "PK\3\4", 4);
    expect_load_error("checkpoint: foreign file (zip magic)", bad, n, GPT3_ERR_NOT_CHECKPOINT);
    expect_load_error("checkpoint: foreign text file", (const unsigned char *)"hello, world\n", 13,
                      GPT3_ERR_NOT_CHECKPOINT);
    memcpy(bad, good, n);
    bad[4] = 2;
    expect_load_error("checkpoint: unknown version 2", bad, n, GPT3_ERR_VERSION);
    memcpy(bad, good, n);
    bad[20] = 3; /* num_heads 3 does not divide channels 8 */
    expect_load_error("checkpoint: channels % heads != 0", bad, n, GPT3_ERR_CONFIG);
    memcpy(bad, good, n);
    bad[12] = 0xff; bad[13] = 0xff; bad[14] = 0xff; bad[15] = 0x7f; /* vocab 2^31-1 */
    expect_load_error("checkpoint: absurd vocab_size", bad, n, GPT3_ERR_CONFIG);
    memcpy(bad, good, n);
    bad[16] = 0xff; bad[17] = 0xff; bad[18] = 0xff; bad[19] = 0x7f; /* L 2^31-1 */
    bad[24] = 0x00; bad[25] = 0x80;                                  /* C 32768 */
    expect_load_error("checkpoint: parameter count past 1e15", bad, n, GPT3_ERR_CONFIG);
    memcpy(bad, good, n);
    bad[17] = 0x10; /* num_layers 4098: needs far more bytes than the file has */
    expect_load_error("checkpoint: header promises more than the file", bad, n, GPT3_ERR_TRUNCATED);
    unsigned char *longer = (unsigned char *)calloc(n + 4, 1);
    if (longer) memcpy(longer, good, n);
    expect_load_error("checkpoint: 4 bytes more than its header says", longer, n + 4, GPT3_ERR_CORRUPT);
    memcpy(bad, good, n);
    bad[8] = 4; /* max_seq_len 8 -> 4: a smaller model that the file is longer than */
    expect_load_error("checkpoint: a header that describes less", bad, n, GPT3_ERR_CORRUPT);
    free(longer);
    rc = gpt3_load(&missing, fixture_dir);
    check(rc == GPT3_ERR_NOT_FILE, "checkpoint: a folder", "-> %s", gpt3_strerror(rc));

    rc = gpt3_save(&m, "no/such/dir/model.ckpt");
    check(rc == GPT3_ERR_OPEN, "checkpoint: save into a missing folder", "-> %s", gpt3_strerror(rc));
    free(good);
    free(bad);
    gpt3_free(&m);
}

static void test_bad_inputs(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int V = cfg.vocab_size, maxT = cfg.max_seq_len;
    int inputs[32], targets[32];
    random_tokens(inputs, 32, V, 22);
    random_tokens(targets, 32, V, 23);
    gpt3_init(&m, &cfg, 4);
    int rc = gpt3_backward(&m);
    check(rc == GPT3_ERR_NO_TARGETS, "bad input: backward before any forward", "-> %s", gpt3_strerror(rc));
    gpt3_forward(&m, inputs, targets, 2, 8);
    float good_loss = m.mean_loss;

    struct { const char *label; int index, value, in_targets, B, T, want; } cases[] = {
        {"bad input: token id -1", 5, -1, 0, 2, 8, GPT3_ERR_TOKEN},
        {"bad input: token id = V", 9, V, 0, 2, 8, GPT3_ERR_TOKEN},
        {"bad input: target id = V", 3, V, 1, 2, 8, GPT3_ERR_TARGET},
        {"bad input: T > max_seq_len", 0, 0, 0, 1, maxT + 1, GPT3_ERR_SEQ_LEN},
        {"bad input: B = 0", 0, 0, 0, 0, 8, GPT3_ERR_BATCH},
        {"bad input: T = 0", 0, 0, 0, 2, 0, GPT3_ERR_BATCH},
        {"bad input: B = -3", 0, 0, 0, -3, 8, GPT3_ERR_BATCH},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int in2[32], tg2[32];
        memcpy(in2, inputs, sizeof(in2));
        memcpy(tg2, targets, sizeof(tg2));
        if (cases[i].in_targets) tg2[cases[i].index] = cases[i].value;
        else in2[cases[i].index] = cases[i].value;
        rc = gpt3_forward(&m, in2, tg2, cases[i].B, cases[i].T);
        check(rc == cases[i].want, cases[i].label, "-> %s", gpt3_strerror(rc));
    }
    rc = gpt3_forward(&m, NULL, targets, 2, 8);
    int rc2 = gpt3_forward(NULL, inputs, targets, 2, 8);
    check(rc == GPT3_ERR_ARGUMENT && rc2 == GPT3_ERR_ARGUMENT, "bad input: NULL inputs, NULL model",
          "-> %s", gpt3_strerror(rc));
    rc = gpt3_adamw_step(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0);
    check(rc == GPT3_ERR_ARGUMENT, "bad input: adamw step t = 0", "-> %s", gpt3_strerror(rc));
    /* the rejected calls changed nothing: the last good forward is intact */
    rc = gpt3_backward(&m);
    rc2 = gpt3_forward(&m, inputs, targets, 2, 8);
    check(rc == GPT3_OK && rc2 == GPT3_OK && m.mean_loss == good_loss,
          "bad input: model still works afterwards", "loss %.6f as before", m.mean_loss);
    gpt3_forward(&m, inputs, NULL, 2, 8);
    rc = gpt3_backward(&m);
    check(rc == GPT3_ERR_NO_TARGETS, "bad input: backward after inference forward", "-> %s",
          gpt3_strerror(rc));
    gpt3_free(&m);

    GPT3Config bad = small_config(0);
    bad.num_heads = 3; /* 8 channels do not divide into 3 heads */
    rc = gpt3_init(&m, &bad, 1);
    int ok = rc == GPT3_ERR_CONFIG && m.params == NULL;
    bad = small_config(-1);
    ok &= gpt3_init(&m, &bad, 1) == GPT3_ERR_CONFIG;
    bad = small_config(0);
    bad.num_layers = 0;
    ok &= gpt3_init(&m, &bad, 1) == GPT3_ERR_CONFIG && gpt3_num_parameters(&bad) == 0;
    ok &= gpt3_init(NULL, &bad, 1) == GPT3_ERR_ARGUMENT;
    check(ok, "bad config: heads do not divide, W < 0, L = 0", "-> %s", gpt3_strerror(rc));
    /* each rule's own words, and none for a good config */
    GPT3Config broken[7];
    for (int i = 0; i < 7; i++) broken[i] = small_config(0);
    broken[0].num_layers = 0;
    broken[1].local_window = -2;
    broken[2].num_heads = 3;
    broken[3].channels = 65536, broken[3].num_heads = 1;
    broken[4].vocab_size = (1 << 28) + 1;
    broken[5].max_seq_len = (1 << 24) + 1;
    broken[6].num_layers = 1 << 24, broken[6].channels = 8192;
    const char *words[7] = {"at least 1", "local_window must be 0", "divide by num_heads", "channels must be at most",
                            "vocabulary must be at most", "context must be at most", "1e15 parameters"};
    ok = gpt3_config_problem(NULL) != NULL && gpt3_config_problem(&broken[0]) != NULL;
    bad = small_config(0);
    ok &= gpt3_config_problem(&bad) == NULL;
    for (int i = 0; i < 7; i++) {
        const char *problem = gpt3_config_problem(&broken[i]);
        ok &= problem && strstr(problem, words[i]) && gpt3_check_config(&broken[i]) == GPT3_ERR_CONFIG;
    }
    check(ok, "bad config: gpt3_config_problem names the rule broken", "7 rules");
    ok = strcmp(gpt3_strerror(12345), "unknown error code") == 0 && strcmp(gpt3_strerror(-1), "unknown error code") == 0;
    for (int code = 0; code < GPT3_NUM_ERRORS; code++) ok &= gpt3_strerror(code) != NULL;
    check(ok, "strerror: every code has a message", "%d codes", GPT3_NUM_ERRORS);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                */

static int open_gpt2(GPT3Tokenizer *tok) {
    char enc[512], bpe[512];
    snprintf(enc, sizeof(enc), "%s/gpt2/encoder.json", fixture_dir);
    snprintf(bpe, sizeof(bpe), "%s/gpt2/vocab.bpe", fixture_dir);
    return gpt3_tokenizer_load(tok, enc, bpe);
}

static int read_u32(FILE *f, uint32_t *x) { return fread(x, 4, 1, f) == 1; }

/* fixtures/tokenizer/cases.bin: ids of OpenAI's tokenizer (tiktoken
   r50k_base) for text in many scripts, emoji, odd whitespace and
   contractions, and of dev/reference_bpe.py for bytes that are not UTF-8.
   Every case must give exactly those ids and decode back to its bytes. */
static void test_tokenizer_fixtures(void) {
    GPT3Tokenizer tok;
    char path[512];
    int rc = open_gpt2(&tok);
    snprintf(path, sizeof(path), "%s/tokenizer/cases.bin", fixture_dir);
    FILE *f = fopen(path, "rb");
    uint32_t header[4] = {0, 0, 0, 0};
    int ok = rc == GPT3_OK && f && fread(header, 4, 4, f) == 4 && header[0] == 0x4B4F5447;
    check(ok && tok.vocab_size == 50257 && tok.num_merges == 50000 && tok.eot == 50256,
          "tokenizer: GPT-2 encoder.json + vocab.bpe load", "V %d, %d merges, <|endoftext|> %d: %s",
          tok.vocab_size, tok.num_merges, tok.eot, gpt3_strerror(rc));
    int cases = 0, wrong_ids = 0, wrong_bytes = 0, first_bad = -1;
    size_t total_bytes = 0;
    for (uint32_t c = 0; ok && c < header[2]; c++) {
        uint32_t n_bytes, n_ids;
        if (!read_u32(f, &n_bytes)) break;
        unsigned char *bytes = (unsigned char *)malloc(n_bytes + 1);
        if (!bytes || fread(bytes, 1, n_bytes, f) != n_bytes || !read_u32(f, &n_ids)) { free(bytes); break; }
        uint32_t *want = (uint32_t *)malloc((n_ids + 1) * sizeof(uint32_t));
        if (!want || fread(want, 4, n_ids, f) != n_ids) { free(bytes); free(want); break; }
        int *ids = NULL;
        size_t n = 0;
        unsigned char *back = NULL;
        size_t n_back = 0;
        int same = gpt3_encode(&tok, bytes, n_bytes, &ids, &n) == GPT3_OK && n == n_ids;
        for (size_t i = 0; same && i < n; i++) same = ids[i] == (int)want[i];
        int round = gpt3_decode(&tok, ids, n, &back, &n_back) == GPT3_OK && n_back == n_bytes &&
                    memcmp(back, bytes, n_bytes) == 0;
        wrong_ids += !same;
        wrong_bytes += !round;
        if ((!same || !round) && first_bad < 0) first_bad = (int)c;
        cases++;
        total_bytes += n_bytes;
        free(bytes); free(want); free(ids); free(back);
    }
    check(ok && cases == (int)header[2] && wrong_ids == 0, "tokenizer: ids = OpenAI's on every case",
          "%d cases (%zu bytes; see fixtures/tokenizer/cases.index.txt): %d wrong, first #%d", cases,
          total_bytes, wrong_ids, first_bad);
    check(ok && cases == (int)header[2] && wrong_bytes == 0, "tokenizer: every case decodes to its bytes",
          "%d cases, %d wrong", cases, wrong_bytes);
    if (f) fclose(f);
    gpt3_tokenizer_free(&tok);
}

/* Random bytes of every kind (NUL, invalid UTF-8) round-trip through the
   GPT-2 BPE, a trained BPE and the byte tokenizer. */
static int roundtrips(GPT3Tokenizer *tok, const unsigned char *bytes, size_t n) {
    int *ids = NULL;
    size_t n_ids = 0, n_back = 0;
    unsigned char *back = NULL;
    int ok = gpt3_encode(tok, bytes, n, &ids, &n_ids) == GPT3_OK &&
             gpt3_decode(tok, ids, n_ids, &back, &n_back) == GPT3_OK && n_back == n &&
             memcmp(back, bytes, n) == 0;
    free(ids);
    free(back);
    return ok;
}

static void test_tokenizer_train(void) {
    const char *text = "the cat sat on the mat. the cat ate the rat. that's the cat's hat! "
                       "1234 5678 the the the   spaces\tand\ttabs\n\nnew lines. "
                       "the cat sat on the mat. the cat ate the rat. that's the cat's hat! "
                       "1234 5678 the the the   spaces\tand\ttabs\n\nnew lines. ";
    GPT3Tokenizer a, b, loaded, bytes, gpt2;
    int rc1 = gpt3_tokenizer_train(&a, text, strlen(text), 300);
    int rc2 = gpt3_tokenizer_train(&b, text, strlen(text), 300);
    int rc3 = gpt3_tokenizer_save(&a, "test_encoder.json", "test_vocab.bpe");
    int rc4 = gpt3_tokenizer_load(&loaded, "test_encoder.json", "test_vocab.bpe");
    int *ids = NULL;
    size_t n = 0;
    gpt3_encode(&a, "the cat", 7, &ids, &n);
    check(rc1 == GPT3_OK && rc2 == GPT3_OK && rc3 == GPT3_OK && rc4 == GPT3_OK && a.id == b.id &&
              loaded.id == a.id && a.vocab_size == 300 && a.eot == 299 && n < 7,
          "bpe-train: deterministic, saves and loads back",
          "V %d, %d merges; \"the cat\" -> %zu tokens; fingerprints %08x %08x %08x", a.vocab_size,
          a.num_merges, n, a.id, b.id, loaded.id);
    free(ids);
    /* A save whose second file cannot be written leaves the first as it was. */
    GPT3Tokenizer other, kept;
    int rc5 = gpt3_tokenizer_train(&other, text, strlen(text), 280);
    int rc6 = rc5 ? rc5 : gpt3_tokenizer_save(&other, "test_encoder.json", "test_no_such_folder/test_vocab.bpe");
    int rc7 = gpt3_tokenizer_load(&kept, "test_encoder.json", "test_vocab.bpe");
    FILE *leftover = fopen("test_encoder.json.tmp", "rb");
    check(rc5 == GPT3_OK && rc6 == GPT3_ERR_OPEN && rc7 == GPT3_OK && kept.id == a.id && !leftover,
          "bpe-train: a save that fails keeps the previous pair",
          "save -> %s, load -> %s, fingerprint %08x (want %08x)%s", gpt3_strerror(rc6), gpt3_strerror(rc7),
          kept.id, a.id, leftover ? ", a temporary file left" : "");
    if (leftover) fclose(leftover);
    gpt3_tokenizer_free(&other);
    gpt3_tokenizer_free(&kept);
    gpt3_tokenizer_bytes(&bytes);
    open_gpt2(&gpt2);
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 40);
    int ok = 1;
    unsigned char buf[600];
    for (int trial = 0; trial < 200; trial++) {
        size_t len = gpt3_rng_u32(&rng) % sizeof(buf);
        for (size_t i = 0; i < len; i++) /* mostly ASCII, some high bytes */
            buf[i] = (unsigned char)(gpt3_rng_u32(&rng) % 4 ? 32 + gpt3_rng_u32(&rng) % 95 : gpt3_rng_u32(&rng) % 256);
        ok &= roundtrips(&a, buf, len) && roundtrips(&loaded, buf, len) && roundtrips(&bytes, buf, len) &&
              roundtrips(&gpt2, buf, len);
    }
    memset(buf, ' ', sizeof(buf)); /* a long run of one piece */
    ok &= roundtrips(&gpt2, buf, sizeof(buf));
    check(ok, "tokenizers: any bytes round-trip", "200 random byte strings, 3 tokenizers");
    gpt3_tokenizer_free(&a); gpt3_tokenizer_free(&b); gpt3_tokenizer_free(&loaded);
    gpt3_tokenizer_free(&bytes); gpt3_tokenizer_free(&gpt2);
    remove("test_encoder.json");
    remove("test_vocab.bpe");
}

static void expect_vocab_error(const char *label, const char *encoder, const char *merges, int want, int want_line) {
    GPT3Tokenizer tok;
    write_bytes("test_bad_encoder.json", encoder, strlen(encoder));
    write_bytes("test_bad_vocab.bpe", merges, strlen(merges));
    int rc = gpt3_tokenizer_load(&tok, "test_bad_encoder.json", "test_bad_vocab.bpe");
    check(rc == want && (want_line == 0 || tok.error_line == want_line) && (rc == GPT3_OK) == (tok.bytes != NULL), label,
          "-> %s (line %d)", gpt3_strerror(rc), tok.error_line);
    gpt3_tokenizer_free(&tok);
    remove("test_bad_encoder.json");
    remove("test_bad_vocab.bpe");
}

/* A small valid encoder.json: the 256 single bytes in GPT-2's order, plus
   "ab" and <|endoftext|>. */
static char *small_encoder(const char *extra) {
    char *json = (char *)malloc(8192);
    size_t n = (size_t)sprintf(json, "{");
    for (int k = 0; k < 256; k++) {
        uint32_t c = gpt3__byte_char(gpt3__byte_of_rank(k));
        char key[16];
        if (c == '"' || c == '\\') sprintf(key, "\\%c", (char)c);
        else if (c < 127) sprintf(key, "%c", (char)c);
        else sprintf(key, "\\u%04x", (unsigned)c);
        n += (size_t)sprintf(json + n, "\"%s\": %d, ", key, k);
    }
    sprintf(json + n, "\"ab\": 256, \"<|endoftext|>\": 257%s}", extra);
    return json;
}

static void test_tokenizer_bad_files(void) {
    GPT3Tokenizer tok;
    int rc = gpt3_tokenizer_load(&tok, "no/such/encoder.json", "no/such/vocab.bpe");
    check(rc == GPT3_ERR_OPEN, "tokenizer: missing files", "-> %s", gpt3_strerror(rc));
    char *good = small_encoder("");
    expect_vocab_error("tokenizer: a small valid pair loads", good, "#version: 0.2\na b\n", GPT3_OK, 0);
    expect_vocab_error("tokenizer: merge line without a pair", good, "#version: 0.2\na b\nab\n", GPT3_ERR_VOCAB, 3);
    expect_vocab_error("tokenizer: merge of tokens not in encoder", good, "#version: 0.2\nb c\n", GPT3_ERR_VOCAB, 2);
    expect_vocab_error("tokenizer: vocab.bpe cut short (no merge makes 'ab')", good, "#version: 0.2\n",
                       GPT3_ERR_VOCAB, 0);
    expect_vocab_error("tokenizer: encoder.json cut short", "{\"a\": 0, \"b\": ", "", GPT3_ERR_VOCAB, 1);
    expect_vocab_error("tokenizer: encoder.json not JSON", "hello\nworld", "", GPT3_ERR_VOCAB, 1);
    expect_vocab_error("tokenizer: encoder.json without the bytes", "{\"a\": 0}", "", GPT3_ERR_VOCAB, 0);
    char *gap = small_encoder(", \"abc\": 999");
    expect_vocab_error("tokenizer: ids with a gap", gap, "", GPT3_ERR_VOCAB, 0);
    char *dup = small_encoder(", \"ab\": 258");
    expect_vocab_error("tokenizer: the same token twice", dup, "", GPT3_ERR_VOCAB, 0);
    char *empty = small_encoder(",\n \"\": 258");
    expect_vocab_error("tokenizer: an empty token", empty, "", GPT3_ERR_VOCAB, 2);
    expect_vocab_error("tokenizer: only an empty token", "{\"\": 0}", "", GPT3_ERR_VOCAB, 1);
    char *trailing = small_encoder("");
    strcat(trailing, "\n}");
    expect_vocab_error("tokenizer: encoder.json with more after its end", trailing, "#version: 0.2\na b\n", GPT3_ERR_VOCAB, 2);
    free(trailing);
    free(good); free(gap); free(dup); free(empty);
}

/* A GPT-2 checkpoint in Hugging Face's layout (dev/make_hf_fixture.py),
   converted by dev/convert_hf_gpt2.py: our logits must match the float64
   PyTorch model written in Hugging Face's convention (Conv1D weights). */
static void test_hf_converted(void) {
    char ckpt[512], ref[512];
    snprintf(ckpt, sizeof(ckpt), "%s/hf_tiny/model.ckpt", fixture_dir);
    snprintf(ref, sizeof(ref), "%s/hf_tiny/reference.bin", fixture_dir);
    GPT3 m;
    int rc = gpt3_load(&m, ckpt);
    FILE *f = fopen(ref, "rb");
    int32_t header[8];
    int ok = rc == GPT3_OK && f && fread(header, 4, 8, f) == 8 && header[0] == 0x46524648 &&
             header[3] == m.config.vocab_size && header[2] <= m.config.max_seq_len;
    int T = ok ? header[2] : 0, V = ok ? header[3] : 0;
    int *tokens = (int *)malloc((size_t)(T + 1) * sizeof(int));
    float *logits = alloc_floats((size_t)T * V);
    ok = ok && fread(tokens, 4, (size_t)T, f) == (size_t)T && fread(logits, 4, (size_t)T * V, f) == (size_t)T * V;
    double e = ok && gpt3_forward(&m, tokens, NULL, 1, T) == GPT3_OK ? rel_error(m.logits, logits, (size_t)T * V) : 1.0;
    check(ok && m.config.local_window == 0 && e < tol_logits, "hugging face gpt-2 -> checkpoint: logits",
          "T %d, V %d: rel err %.1e (tol %.0e)", T, V, e, tol_logits);
    if (f) fclose(f);
    free(tokens);
    free(logits);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Data and training state                                                  */

static void test_token_files(void) {
    uint16_t tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = (uint16_t)(i * 7 % 50);
    GPT3Tokens t;
    int rc1 = gpt3_tokens_save("test_data.tok", tokens, 100, 50, 0xABCD);
    int rc2 = gpt3_tokens_load(&t, "test_data.tok");
    int same = rc1 == GPT3_OK && rc2 == GPT3_OK && t.count == 100 && t.vocab_size == 50 &&
               t.tokenizer_id == 0xABCD && memcmp(t.tokens, tokens, sizeof(tokens)) == 0;
    GPT3DataLoader seq, shuf;
    int rc3 = gpt3_loader_init(&seq, &t, 2, 10, 0, 1), rc4 = gpt3_loader_init(&shuf, &t, 3, 10, 1, 1);
    int shifted = rc3 == GPT3_OK && rc4 == GPT3_OK;
    for (int round = 0; shifted && round < 8; round++) { /* sequential wraps after 9 windows */
        gpt3_loader_next(&seq);
        gpt3_loader_next(&shuf);
        for (int i = 0; i + 1 < 10; i++) {
            shifted &= seq.targets[i] == seq.inputs[i + 1] && shuf.targets[10 + i] == shuf.inputs[10 + i + 1];
        }
        shifted &= seq.inputs[10] == tokens[((2 * round + 1) * 10) % 90];
    }
    check(same && shifted, "token files and the batch loader", "100 tokens round-trip; targets = inputs shifted by one");
    GPT3DataLoader short_dl;
    int rc5 = gpt3_loader_init(&short_dl, &t, 1, 100, 0, 1);
    check(rc5 == GPT3_ERR_DATA_SHORT, "data: fewer than T + 1 tokens", "T 100 of 100 tokens -> %s", gpt3_strerror(rc5));
    gpt3_loader_free(&seq); gpt3_loader_free(&shuf);

    size_t n;
    unsigned char *bytes = read_all("test_data.tok", &n);
    struct { const char *label; size_t length; int offset, value; } bad[] = {
        {"data: token file cut short", 256 + 150, -1, 0},
        {"data: not a token file (magic)", 256 + 200, 0, 'X'},
        {"data: token >= vocab_size", 256 + 200, 256 + 11, 0x7f},
        {"data: empty file", 0, -1, 0},
        {"data: a count of 2^63 + 100 tokens", 256 + 200, 23, 0x80},
    };
    for (int i = 0; bytes && i < 5; i++) {
        unsigned char *copy = (unsigned char *)malloc(n);
        memcpy(copy, bytes, n);
        if (bad[i].offset >= 0) copy[bad[i].offset] = (unsigned char)bad[i].value;
        write_bytes("test_bad.tok", copy, bad[i].length);
        GPT3Tokens b;
        int rc = gpt3_tokens_load(&b, "test_bad.tok");
        check(rc == GPT3_ERR_DATA && b.tokens == NULL, bad[i].label, "-> %s", gpt3_strerror(rc));
        free(copy);
    }
    free(bytes);
    gpt3_tokens_free(&t);
    remove("test_data.tok");
    remove("test_bad.tok");
}

static void test_train_state(void) {
    GPT3Config cfg = small_config(3);
    GPT3 a, b;
    int inputs[16], targets[16];
    random_tokens(inputs, 16, cfg.vocab_size, 50);
    random_tokens(targets, 16, cfg.vocab_size, 51);
    gpt3_init(&a, &cfg, 5);
    train_steps(&a, inputs, targets, 2, 8, 3, 1e-2f);
    GPT3TrainState st = {3, 12345, 0x1122334455667788ULL, 77}, back;
    int rc1 = gpt3_save(&a, "test_state.ckpt"), rc2 = gpt3_save_state(&a, &st, "test_state.ckpt.state");
    int rc3 = gpt3_load(&b, "test_state.ckpt"), rc4 = gpt3_load_state(&b, &back, "test_state.ckpt.state");
    int same = rc1 == GPT3_OK && rc2 == GPT3_OK && rc3 == GPT3_OK && rc4 == GPT3_OK && back.step == 3 &&
               back.data_position == 12345 && back.data_rng == st.data_rng && back.tokenizer_id == 77 &&
               memcmp(a.adam_m, b.adam_m, a.num_parameters * 4) == 0 &&
               memcmp(a.adam_v, b.adam_v, a.num_parameters * 4) == 0;
    /* continuing the saved model and the loaded one gives the same parameters */
    train_steps_from(&a, inputs, targets, 2, 8, 4, 5, 1e-2f);
    train_steps_from(&b, inputs, targets, 2, 8, 4, 5, 1e-2f);
    int continued = memcmp(a.params, b.params, a.num_parameters * sizeof(float)) == 0;
    check(same && continued, "training state: save/load restores AdamW and the data position",
          "step %d, position %llu; 2 more steps on each: %s", back.step,
          (unsigned long long)back.data_position, continued ? "bit-identical" : "differ");
    int rc5 = gpt3_load_state(&a, &back, "test_state.ckpt.state"); /* a has moved on 2 steps */
    check(rc5 == GPT3_ERR_MISMATCH, "training state: refused for other parameters", "-> %s", gpt3_strerror(rc5));
    gpt3_free(&a); gpt3_free(&b);
    remove("test_state.ckpt");
    remove("test_state.ckpt.state");
}

#if defined(__unix__) || defined(__APPLE__)
#include <signal.h>
#include <sys/resource.h>
/* A disk that fills while saving: with the file size limited below the
   checkpoint's size, the save fails and the previous checkpoint is intact. */
static void test_disk_full(void) {
    GPT3Config cfg = small_config(0);
    GPT3 m;
    gpt3_init(&m, &cfg, 8);
    int rc1 = gpt3_save(&m, "test_full.ckpt");
    size_t n_before = 0;
    unsigned char *before = read_all("test_full.ckpt", &n_before);
    for (size_t i = 0; i < m.num_parameters; i++) m.params[i] += 1.0f;
    struct rlimit old, small;
    getrlimit(RLIMIT_FSIZE, &old);
    small = old;
    small.rlim_cur = 2000; /* bytes: the checkpoint is larger */
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    int rc2 = gpt3_save(&m, "test_full.ckpt");
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    size_t n_after = 0;
    unsigned char *after = read_all("test_full.ckpt", &n_after);
    FILE *tmp = fopen("test_full.ckpt.tmp", "rb");
    int intact = before && after && n_before == n_after && memcmp(before, after, n_after) == 0;
    check(rc1 == GPT3_OK && rc2 == GPT3_ERR_WRITE && intact && !tmp, "checkpoint: disk full while saving",
          "-> %s; previous file intact, no temporary left", gpt3_strerror(rc2));
    if (tmp) fclose(tmp);
    free(before);
    free(after);
    gpt3_free(&m);
    remove("test_full.ckpt");
}
#endif

/* A save of a run (checkpoint + state) cut off at each point: before its
   commit point, loading the run gives the previous save; after it, the
   new one (and the checkpoint is put in its place). The files an
   interruption leaves are made here by hand: a half-written path.tmp;
   both temporary files complete; the state renamed but not the
   checkpoint. */
static int run_is(const char *path, const GPT3 *want, int step) {
    GPT3 m;
    GPT3TrainState st;
    int rc = gpt3_load_run(&m, &st, path);
    int same = rc == GPT3_OK && st.step == step && m.num_parameters == want->num_parameters &&
               memcmp(m.params, want->params, m.num_parameters * 4) == 0 &&
               memcmp(m.adam_m, want->adam_m, m.num_parameters * 4) == 0 &&
               memcmp(m.adam_v, want->adam_v, m.num_parameters * 4) == 0;
    gpt3_free(&m);
    return same;
}

static void test_run_saves(void) {
    GPT3Config cfg = small_config(3);
    GPT3 old, now;
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8] = {2, 3, 4, 5, 6, 7, 8, 9};
    GPT3TrainState st2 = {2, 10, 11, 0}, st3 = {3, 20, 21, 0};
    gpt3_init(&old, &cfg, 3);
    train_steps(&old, in, out, 1, 8, 2, 1e-2f);
    gpt3_init(&now, &cfg, 3);
    train_steps(&now, in, out, 1, 8, 3, 1e-2f);
    size_t n;
    gpt3_save(&now, "test_run_full.ckpt");
    unsigned char *full = read_all("test_run_full.ckpt", &n);
    struct { const char *label; int commit, want_step; } cases[] = {
        {"run save: cut while writing the checkpoint", 0, 2},
        {"run save: cut with both files written", 1, 2},
        {"run save: cut between the renames", 2, 3},
        {"run save: complete", 3, 3},
    };
    for (int i = 0; i < 4; i++) {
        remove("test_run.ckpt.tmp");
        int rc = gpt3_save_run(&old, &st2, "test_run.ckpt");
        if (cases[i].commit == 0 && full) write_bytes("test_run.ckpt.tmp", full, n / 2);
        if (cases[i].commit == 1) {
            gpt3_save(&now, "test_run.ckpt.tmp");
            gpt3_save_state(&now, &st3, "test_run.ckpt.state.tmp");
        }
        if (cases[i].commit == 2) {
            gpt3_save(&now, "test_run.ckpt.tmp");
            gpt3_save_state(&now, &st3, "test_run.ckpt.state");
        }
        if (cases[i].commit == 3) rc = rc == GPT3_OK ? gpt3_save_run(&now, &st3, "test_run.ckpt") : rc;
        int same = rc == GPT3_OK && run_is("test_run.ckpt", cases[i].want_step == 2 ? &old : &now,
                                           cases[i].want_step);
        /* once loaded, the checkpoint in its place is the run's */
        GPT3 plain;
        int in_place = gpt3_load(&plain, "test_run.ckpt") == GPT3_OK &&
                       memcmp(plain.params, (cases[i].want_step == 2 ? &old : &now)->params,
                              plain.num_parameters * 4) == 0;
        gpt3_free(&plain);
        check(same && in_place, cases[i].label, "loads the save of step %d%s", cases[i].want_step,
              same && in_place ? ", bit-identical, checkpoint in place" : ": WRONG");
    }
#if defined(__unix__) || defined(__APPLE__)
    /* a disk that fills while the state is written: nothing changes */
    struct rlimit limit, small;
    getrlimit(RLIMIT_FSIZE, &limit);
    small = limit;
    small.rlim_cur = (rlim_t)n + 100; /* the checkpoint fits, the state does not */
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &small);
    int rc = gpt3_save_run(&old, &st2, "test_run.ckpt");
    setrlimit(RLIMIT_FSIZE, &limit);
    signal(SIGXFSZ, old_handler);
    FILE *left1 = fopen("test_run.ckpt.tmp", "rb"), *left2 = fopen("test_run.ckpt.state.tmp", "rb");
    check(rc == GPT3_ERR_WRITE && run_is("test_run.ckpt", &now, 3) && !left1 && !left2,
          "run save: disk full while writing the state", "-> %s; the previous save (step 3) loads, no temporary left",
          gpt3_strerror(rc));
    if (left1) fclose(left1);
    if (left2) fclose(left2);
#endif
    free(full);
    gpt3_free(&old);
    gpt3_free(&now);
    const char *files[] = {"test_run.ckpt", "test_run.ckpt.state", "test_run.ckpt.tmp",
                           "test_run.ckpt.state.tmp", "test_run_full.ckpt"};
    for (int i = 0; i < 5; i++) remove(files[i]);
}

/* ------------------------------------------------------------------------ */
/* Fine-tuning                                                              */

/* Central differences of a fine-tuning loss over every trainable array
   (the model's 16 tensors, the adapters, the head, the soft prompt)
   against the backward. */
typedef struct {
    GPT3 *m;
    const int *inputs, *lengths, *labels;
    int B, T, head;           /* head: use gpt3_head_forward, else the LM */
    uint64_t dropout_seed;    /* the same masks at every evaluation */
} TaskCase;

static double task_objective(void *p) {
    TaskCase *c = (TaskCase *)p;
    c->m->dropout_seed = c->dropout_seed;
    if (c->head) {
        gpt3_head_forward(c->m, c->inputs, c->lengths, c->labels, c->B, c->T);
        return c->m->head->mean_loss;
    }
    gpt3_forward(c->m, c->inputs, c->labels, c->B, c->T);
    if (c->m->teacher_logits) return c->m->mean_loss;
    double sum = 0.0; /* the mean in double: less rounding than mean_loss */
    int count = 0;
    for (int i = 0; i < c->B * c->T; i++) {
        if (c->labels[i] < 0) continue;
        sum += c->m->acts.losses[i];
        count++;
    }
    return sum / count;
}

/* Worst FD error over the arrays that train; name gets the worst one's. */
static double task_fd(TaskCase *c, const char **worst_name) {
    GPT3 *m = c->m;
    task_objective(c);
    gpt3_zero_grad(m);
    if (c->head) gpt3_head_backward(m);
    else gpt3_backward(m);
    float *arrays[4] = {m->params, m->lora ? m->lora->params : NULL, m->head ? m->head->params : NULL,
                        m->prompt ? m->prompt->params : NULL};
    float *grads[4] = {m->grads, m->lora ? m->lora->grads : NULL, m->head ? m->head->grads : NULL,
                       m->prompt ? m->prompt->grads : NULL};
    size_t sizes[4] = {m->num_parameters, m->lora ? m->lora->num_parameters : 0,
                       m->head ? (size_t)m->head->num_classes * (m->config.channels + 1) : 0,
                       m->prompt ? (size_t)m->prompt->length * m->config.channels : 0};
    const char *names[4] = {"model", "lora", "head", "prompt"};
    double worst = 0.0;
    for (int k = 0; k < 4; k++) {
        if (!sizes[k]) continue;
        float *analytic = alloc_floats(sizes[k]);
        memcpy(analytic, grads[k], sizes[k] * sizeof(float));
        /* with a frozen model, only the parts that train are checked (the
           freezing test checks that the others get no gradient) */
        double e;
        if (k == 0 && (m->frozen_layers || m->frozen_final)) {
            e = 0.0;
            size_t offset = 0;
            for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
                int per = i >= 2 && i <= 13, parts = per ? m->config.num_layers : 1;
                size_t n = m->tensor_sizes[i] / (size_t)parts;
                for (int l = 0; l < parts; l++) {
                    size_t at = offset + (size_t)l * n;
                    if (!gpt3__trains(m, i, l)) continue;
                    double el = fd_error(arrays[k] + at, n, analytic + at, task_objective, c, FD_H);
                    if (el > e) e = el;
                }
                offset += m->tensor_sizes[i];
            }
        } else {
            e = fd_error(arrays[k], sizes[k], analytic, task_objective, c, FD_H);
        }
        if (e > worst) { worst = e; *worst_name = names[k]; }
        free(analytic);
    }
    return worst;
}

static void task_check(const char *label, TaskCase *c) {
    const char *worst_name = "-";
    double e = task_fd(c, &worst_name);
    check(e < 5e-3, label, "worst err %.1e in %s (tol 5e-3)", e, worst_name);
}

static void test_head_grads(void) {
    GPT3Config cfg = small_config(3);
    int inputs[14] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7, 1, 6, 8, 2};
    int lengths[2] = {7, 4};
    int bin[2] = {1, 0}, cls[2] = {2, 0};
    int tags[14] = {0, 1, 2, -1, 1, 0, 2, 1, 1, 0, 2, 2, 2, 2}; /* -1 ignored; 11..13 are padding */
    struct { const char *label; int kind, K; const int *labels; } heads[] = {
        {"fd: binary head, BCE (sigma(z) - y)", GPT3_HEAD_BINARY, 1, bin},
        {"fd: 3-class head, softmax CE", GPT3_HEAD_CLASSES, 3, cls},
        {"fd: tag head, ignored labels and padding", GPT3_HEAD_TAGS, 3, tags},
    };
    for (int i = 0; i < 3; i++) {
        GPT3 m;
        gpt3_init(&m, &cfg, 60 + i);
        perturb(m.params, m.num_parameters, 0.3f, 61);
        gpt3_head_attach(&m, heads[i].kind, heads[i].K, 62);
        perturb(m.head->params, (size_t)heads[i].K * (cfg.channels + 1), 0.5f, 63);
        TaskCase c = {&m, inputs, lengths, heads[i].labels, 2, 7, 1, 0};
        task_check(heads[i].label, &c);
        gpt3_free(&m);
    }
}

static void test_finetune_grads(void) {
    GPT3Config cfg = small_config(3);
    int inputs[14] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7, 1, 6, 8, 2};
    int completion[14] = {-1, -1, -1, 9, 0, 3, 10, -1, -1, -1, -1, 6, 8, 2}; /* prompt masked */
    int cls[2] = {2, 0};
    GPT3 m;
    /* LoRA on a frozen model, with a classification head */
    gpt3_init(&m, &cfg, 70);
    perturb(m.params, m.num_parameters, 0.3f, 71);
    gpt3_freeze(&m, 0);
    gpt3_lora_attach(&m, 2, 4.0f, 72);
    perturb(m.lora->params, m.lora->num_parameters, 0.4f, 73); /* B != 0: every path live */
    gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 3, 74);
    TaskCase c = {&m, inputs, NULL, cls, 2, 7, 1, 0};
    task_check("fd: LoRA adapters (frozen model) + head", &c);
    gpt3_free(&m);
    /* dropout everywhere, LM loss on the completion only, top block trains */
    gpt3_init(&m, &cfg, 75);
    perturb(m.params, m.num_parameters, 0.3f, 76);
    gpt3_freeze(&m, 1);
    gpt3_set_training(&m, 1, 0.2f, 77);
    TaskCase d = {&m, inputs, NULL, completion, 2, 7, 0, 1234};
    task_check("fd: dropout 0.2, completion-only LM, top block", &d);
    gpt3_free(&m);
    /* distillation of the LM and of a classifier */
    float teacher[14 * 11], teacher_cls[6];
    GPT3Rng rng;
    gpt3_rng_seed(&rng, 78);
    for (int i = 0; i < 14 * 11; i++) teacher[i] = 3.0f * (gpt3_rng_float(&rng) - 0.5f);
    for (int i = 0; i < 6; i++) teacher_cls[i] = 3.0f * (gpt3_rng_float(&rng) - 0.5f);
    gpt3_init(&m, &cfg, 79);
    perturb(m.params, m.num_parameters, 0.3f, 80);
    gpt3_set_distillation(&m, teacher, 2.0f, 0.7f);
    TaskCase e = {&m, inputs, NULL, completion, 2, 7, 0, 0};
    task_check("fd: distillation, LM (tau 2, alpha 0.7)", &e);
    gpt3_set_distillation(&m, teacher_cls, 3.0f, 0.5f);
    gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 3, 81);
    TaskCase f = {&m, inputs, NULL, cls, 2, 7, 1, 0};
    task_check("fd: distillation, classifier (tau 3, alpha 0.5)", &f);
    gpt3_free(&m);
}

static void test_freezing(void) {
    GPT3Config cfg = small_config(3);
    cfg.num_layers = 3;
    GPT3 m, before;
    int inputs[16], targets[16];
    random_tokens(inputs, 16, cfg.vocab_size, 90);
    random_tokens(targets, 16, cfg.vocab_size, 91);
    gpt3_init(&m, &cfg, 92);
    gpt3_init(&before, &cfg, 92);
    gpt3_freeze(&m, 1); /* only block 2 and the final LayerNorm */
    train_steps(&m, inputs, targets, 2, 8, 3, 1e-2f);
    int frozen_same = 1, trained_moved = 1, no_state = 1, no_grad = 1;
    size_t offset = 0;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        int per = i >= 2 && i <= 13, parts = per ? cfg.num_layers : 1;
        size_t n = m.tensor_sizes[i] / (size_t)parts;
        for (int l = 0; l < parts; l++) {
            size_t at = offset + (size_t)l * n;
            int same = memcmp(m.params + at, before.params + at, n * sizeof(float)) == 0;
            if (gpt3__trains(&m, i, l)) { trained_moved &= !same; continue; }
            frozen_same &= same;
            for (size_t j = 0; j < n; j++) {
                no_state &= m.adam_m[at + j] == 0.0f && m.adam_v[at + j] == 0.0f;
                no_grad &= m.grads[at + j] == 0.0f;
            }
        }
        offset += m.tensor_sizes[i];
    }
    check(frozen_same && trained_moved && no_state && no_grad, "freezing: top block trains, the rest bit-identical",
          "frozen: unchanged %s, no gradient %s, no AdamW state %s; trainable moved %s",
          frozen_same ? "yes" : "no", no_grad ? "yes" : "no", no_state ? "yes" : "no", trained_moved ? "yes" : "no");
    gpt3_free(&m);
    gpt3_free(&before);
}

/* ---- Prompt tuning ---- */

static void test_prompt_tuning(void) {
    GPT3Config cfg = small_config(3);
    int inputs[10] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7}, lengths[2] = {5, 3}, cls[2] = {2, 0};
    int completion[10] = {-1, -1, 2, 9, 0, -1, -1, 4, 4, 7};
    GPT3 m, plain;
    /* the gradient: a frozen model, the prompt and a head train; then the LM */
    gpt3_init(&m, &cfg, 100);
    perturb(m.params, m.num_parameters, 0.3f, 101);
    gpt3_freeze(&m, 0);
    int rc = gpt3_prompt_attach(&m, 3, NULL, 0, 102);
    perturb(m.prompt->params, 3 * 8, 0.5f, 103);
    gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 3, 104);
    perturb(m.head->params, 27, 4.0f, 109); /* a larger gradient than float32's noise */
    TaskCase c = {&m, inputs, lengths, cls, 2, 5, 1, 0};
    if (rc == GPT3_OK) task_check("fd: soft prompt of 3 (frozen model) + head", &c);
    gpt3_free(&m);
    gpt3_init(&m, &cfg, 105);
    perturb(m.params, m.num_parameters, 0.3f, 106);
    gpt3_freeze(&m, 0);
    gpt3_prompt_attach(&m, 3, NULL, 0, 107);
    gpt3_set_training(&m, 1, 0.2f, 108);
    TaskCase d = {&m, inputs, NULL, completion, 2, 5, 0, 4321};
    task_check("fd: soft prompt of 3, LM on the completion, dropout 0.2", &d);
    gpt3_free(&m);

    /* a prompt made of token embeddings is those tokens: the same logits
       as the model reading them (tolerance: another matmul shape) */
    int prefix[3] = {6, 2, 8}, joined[16];
    gpt3_init(&m, &cfg, 110);
    gpt3_init(&plain, &cfg, 110);
    gpt3_prompt_attach(&m, 3, prefix, 3, 0);
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 8; t++) joined[b * 8 + t] = t < 3 ? prefix[t] : inputs[b * 5 + t - 3];
    gpt3_forward(&m, inputs, NULL, 2, 5);
    gpt3_forward(&plain, joined, NULL, 2, 8);
    double worst = 0.0;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 5; t++)
            for (int v = 0; v < 11; v++)
                worst = fmax(worst, fabs(m.logits[(b * 5 + t) * 11 + v] - plain.logits[(b * 8 + t + 3) * 11 + v]));
    GPT3KVCache kv;
    gpt3_kv_init(&kv, &m);
    double kv_worst = 0.0;
    for (int t = 0; t < 5; t++) {
        gpt3_kv_forward(&m, &kv, inputs[t]);
        for (int v = 0; v < 11; v++) kv_worst = fmax(kv_worst, fabs(kv.logits[v] - m.logits[t * 11 + v]));
    }
    int too_long = gpt3_forward(&m, joined, NULL, 1, 6) == GPT3_ERR_SEQ_LEN; /* 3 + 6 > 8 */
    /* scoring choices after the prompt: it takes 3 of the 8 positions */
    int context[3] = {1, 4, 7}, with_prefix[6] = {6, 2, 8, 1, 4, 7}, choice[3] = {9, 5, 2};
    const int *choices[1] = {choice};
    int two[1] = {2}, three[1] = {3};
    double lp_prompt = 0.0, lp_plain = 1.0, lp_long = 0.0;
    int scored = gpt3_score_choices(&m, context, 3, choices, two, 1, &lp_prompt, NULL) == GPT3_OK &&
                 gpt3_score_choices(&plain, with_prefix, 6, choices, two, 1, &lp_plain, NULL) == GPT3_OK;
    too_long &= gpt3_score_choices(&m, context, 3, choices, three, 1, &lp_long, NULL) == GPT3_ERR_SEQ_LEN;
    double score_error = fabs(lp_prompt - lp_plain);
    check(worst < 1e-5 && kv_worst < 1e-5 && kv.pos == 8 && scored && score_error < 1e-5 && too_long,
          "prompt tuning: a prompt of token embeddings = those tokens read; KV cache, scores = forward",
          "max |diff| %.1e, KV cache %.1e, choice's log-likelihood %.1e (tol 1e-5), cache at %d; "
          "T + N > max_seq_len refused: %s", worst, kv_worst, score_error, kv.pos, too_long ? "yes" : "no");
    gpt3_kv_free(&kv);
    gpt3_free(&plain);

    /* training the prompt alone: the model bit-identical, no AdamW state for it */
    int targets[10];
    random_tokens(targets, 10, 11, 111);
    gpt3_init(&plain, &cfg, 110);
    gpt3_freeze(&m, 0);
    float before[24];
    memcpy(before, m.prompt->params, sizeof(before));
    train_steps(&m, inputs, targets, 2, 5, 3, 1e-2f);
    int same = memcmp(m.params, plain.params, m.num_parameters * sizeof(float)) == 0;
    int moved = memcmp(before, m.prompt->params, sizeof(before)) != 0;
    check(same && moved && !m.adam_m && !m.adam_v, "prompt tuning: only the prompt trains",
          "model unchanged %s, AdamW state for the model %s, prompt moved %s", same ? "yes" : "no",
          m.adam_m ? "allocated" : "none", moved ? "yes" : "no");

    /* saved with the head (and alone), loaded back; bad arguments refused */
    static const char *const names[3] = {"a", "b", "c"};
    gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 3, 112);
    gpt3_head_set_names(&m, names, 3);
    gpt3_head_forward(&m, inputs, lengths, NULL, 2, 5);
    float want[6];
    memcpy(want, m.head->logits, sizeof(want));
    gpt3_save(&m, "test_prompt.ckpt");
    int rc1 = gpt3_head_save(&m, "test_prompt.head");
    GPT3 back;
    int rc2 = gpt3_load(&back, "test_prompt.ckpt");
    if (rc2 == GPT3_OK) rc2 = gpt3_head_load(&back, "test_prompt.head");
    if (rc2 == GPT3_OK) rc2 = gpt3_head_forward(&back, inputs, lengths, NULL, 2, 5);
    int equal = rc2 == GPT3_OK && back.prompt && memcmp(want, back.head->logits, sizeof(want)) == 0;
    gpt3_free(&back);
    gpt3__free_head(&m); /* a prompt alone (the generate task's) */
    rc1 = rc1 == GPT3_OK ? gpt3_head_save(&m, "test_prompt.head") : rc1;
    int rc3 = gpt3_load(&back, "test_prompt.ckpt");
    if (rc3 == GPT3_OK) rc3 = gpt3_head_load(&back, "test_prompt.head");
    int alone = rc3 == GPT3_OK && !back.head && back.prompt && back.prompt->length == 3 &&
                memcmp(back.prompt->params, m.prompt->params, 24 * sizeof(float)) == 0;
    gpt3_free(&back);
    check(rc1 == GPT3_OK && equal && alone, "prompt tuning: saved with the head, and alone",
          "save %s; with the head: same logits %s; alone: loaded %s", gpt3_strerror(rc1), equal ? "yes" : "no",
          alone ? "yes" : "no");
    int bad[5] = {gpt3_prompt_attach(&m, 2, NULL, 0, 1), 0, 0, 0, 0};
    gpt3__free_prompt(&m);
    bad[1] = gpt3_prompt_attach(&m, 8, NULL, 0, 1);           /* leaves no room for a token */
    bad[2] = gpt3_prompt_attach(&m, 2, prefix, 3, 1);         /* more init tokens than vectors */
    bad[3] = gpt3_prompt_attach(&m, 3, (const int[]){11}, 1, 1); /* not a token */
    bad[4] = gpt3_prompt_attach(&m, 0, NULL, 0, 1);
    check(bad[0] == GPT3_ERR_ARGUMENT && bad[1] == GPT3_ERR_ARGUMENT && bad[2] == GPT3_ERR_ARGUMENT &&
          bad[3] == GPT3_ERR_TOKEN && bad[4] == GPT3_ERR_ARGUMENT && !m.prompt,
          "prompt tuning: bad arguments refused", "%s / %s / %s / %s / %s", gpt3_strerror(bad[0]),
          gpt3_strerror(bad[1]), gpt3_strerror(bad[2]), gpt3_strerror(bad[3]), gpt3_strerror(bad[4]));
    gpt3_free(&m);
    gpt3_free(&plain);
    remove("test_prompt.ckpt");
    remove("test_prompt.head");
}

/* ---- Adversarial training ---- */

/* A model with a 3-class head for the adversarial tests; every part trains. */
static void adversarial_model(GPT3 *m, uint64_t seed) {
    GPT3Config cfg = small_config(3);
    gpt3_init(m, &cfg, seed);
    perturb(m->params, m->num_parameters, 0.3f, seed + 1);
    gpt3_head_attach(m, GPT3_HEAD_CLASSES, 3, seed + 2);
}

typedef struct { GPT3 *m; const int *inputs, *labels; int T; } WpeCase;

/* The head's loss, B = 1: wpe[t] moves x_0[t] as r[t] would. */
static double wpe_objective(void *p) {
    WpeCase *c = (WpeCase *)p;
    gpt3_head_forward(c->m, c->inputs, NULL, c->labels, 1, c->T);
    return c->m->head->mean_loss;
}

static double norm_of(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

static void test_adversarial(void) {
    int inputs[12] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7, 1, 6}, lengths[2] = {6, 4};
    int label[12] = {2, 1}; /* (B): the rest only quiets gcc, which cannot see the head is no tag head */
    int T = 6, C = 8;
    size_t n = (size_t)T * C;
    GPT3 m, twin;
    /* FGM's r on a frozen model: epsilon g / ||g||, g = dLoss/dx_0 by central differences */
    adversarial_model(&m, 120);
    gpt3_freeze(&m, 0);
    float eps = 1e-3f;
    gpt3_set_adversarial(&m, 1, eps, 0.0f);
    gpt3_head_forward(&m, inputs, NULL, label, 1, T);
    float clean = m.head->mean_loss;
    gpt3_zero_grad(&m);
    gpt3_head_backward(&m);
    float *r = alloc_floats(n), *g = alloc_floats(n), *unit = alloc_floats(n);
    memcpy(r, m.adversary.delta, n * sizeof(float));
    float rise = m.adversary.loss - clean;
    gpt3_set_adversarial(&m, 0, 0.0f, 0.0f);
    WpeCase wc = {&m, inputs, label, T};
    for (size_t i = 0; i < n; i++) { /* central differences, h = 1e-2 */
        float saved = m.w.wpe[i];
        m.w.wpe[i] = saved + 1e-2f;
        double up = wpe_objective(&wc);
        m.w.wpe[i] = saved - 1e-2f;
        g[i] = (float)((up - wpe_objective(&wc)) / 2e-2);
        m.w.wpe[i] = saved;
    }
    double gnorm = norm_of(g, n);
    for (size_t i = 0; i < n; i++) unit[i] = (float)(eps * g[i] / gnorm);
    double err = 0.0;
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs(unit[i] - r[i]) / eps);
    double predicted = eps * gnorm; /* first order: l(x + r) - l(x) = g . r = eps ||g|| */
    check(err < 2e-3 && fabs(rise - predicted) < 0.1 * predicted + 1e-7,
          "fd: FGM's r = eps dLoss/dx_0 / ||.|| (frozen model), and the loss rises eps ||g||",
          "max |r - r_fd| / eps %.1e (tol 2e-3); rise %.3e, eps ||g|| %.3e (tol 10%%)", err, rise, predicted);
    gpt3_free(&m);

    /* each example's r has norm epsilon, the prompt's rows none; padding none */
    adversarial_model(&m, 130);
    gpt3_prompt_attach(&m, 2, NULL, 0, 131);
    gpt3_set_adversarial(&m, 1, 0.5f, 0.0f);
    gpt3_head_forward(&m, inputs, lengths, label, 2, T);
    gpt3_head_backward(&m);
    int S = T + 2;
    double n0 = norm_of(m.adversary.delta + 2 * C, n), n1 = norm_of(m.adversary.delta + (size_t)(S + 2) * C, n);
    double prompt_rows = norm_of(m.adversary.delta, 2 * (size_t)C) + norm_of(m.adversary.delta + (size_t)S * C, 2 * (size_t)C);
    double padding = norm_of(m.adversary.delta + (size_t)(S + 2 + 4) * C, 2 * (size_t)C);
    check(fabs(n0 - 0.5) < 1e-5 && fabs(n1 - 0.5) < 1e-5 && prompt_rows == 0.0 && padding == 0.0,
          "FGM: ||r|| = epsilon for each example, 0 on the soft prompt and padding",
          "norms %.6f %.6f (epsilon 0.5), prompt rows %.1e, padding %.1e", n0, n1, prompt_rows, padding);
    gpt3_free(&m);

    /* the gradient is the clean one plus the one at x + r (r fixed): FGM,
       and PGD (3 steps), checked on a twin that moves wpe by r (B = 1) */
    for (int steps = 1; steps <= 3; steps += 2) {
        adversarial_model(&m, 140);
        adversarial_model(&twin, 140);
        gpt3_set_adversarial(&m, steps, 0.3f, 0.15f);
        gpt3_head_forward(&m, inputs, NULL, label, 1, T);
        gpt3_zero_grad(&m);
        gpt3_head_backward(&m);
        double rn = norm_of(m.adversary.delta, n);
        gpt3_head_forward(&twin, inputs, NULL, label, 1, T);
        gpt3_zero_grad(&twin);
        gpt3_head_backward(&twin);
        for (size_t i = 0; i < n; i++) twin.w.wpe[i] += m.adversary.delta[i];
        gpt3_head_forward(&twin, inputs, NULL, label, 1, T);
        gpt3_head_backward(&twin);
        double diff = 0.0, scale = 0.0;
        for (size_t i = 0; i < m.num_parameters; i++) {
            diff = fmax(diff, fabs(m.grads[i] - twin.grads[i]));
            scale = fmax(scale, fabs(twin.grads[i]));
        }
        for (int i = 0; i < 3 * 9; i++) diff = fmax(diff, fabs(m.head->grads[i] - twin.head->grads[i]));
        check(diff <= 1e-5 * scale && rn <= 0.3 * (1 + 1e-6) && rn > 0.1,
              steps == 1 ? "FGM: gradient = clean + at x + r" : "PGD, 3 steps: gradient = clean + at the last x + r",
              "max |diff| %.1e (tol 1e-5 of %.1e), ||r|| %.4f (epsilon 0.3)", diff, scale, rn);
        gpt3_free(&m);
        gpt3_free(&twin);
    }

    /* the same through the LM head (a task head attached but not used) */
    int next[12];
    random_tokens(next, T, 11, 145);
    adversarial_model(&m, 146);
    adversarial_model(&twin, 146);
    gpt3_set_adversarial(&m, 1, 0.3f, 0.0f);
    gpt3_forward(&m, inputs, next, 1, T);
    float clean_lm = m.mean_loss;
    gpt3_zero_grad(&m);
    gpt3_backward(&m);
    gpt3_forward(&twin, inputs, next, 1, T);
    gpt3_zero_grad(&twin);
    gpt3_backward(&twin);
    for (size_t i = 0; i < n; i++) twin.w.wpe[i] += m.adversary.delta[i];
    gpt3_forward(&twin, inputs, next, 1, T);
    float perturbed_lm = twin.mean_loss;
    gpt3_backward(&twin);
    double lm_diff = 0.0, lm_scale = 0.0;
    for (size_t i = 0; i < m.num_parameters; i++) {
        lm_diff = fmax(lm_diff, fabs(m.grads[i] - twin.grads[i]));
        lm_scale = fmax(lm_scale, fabs(twin.grads[i]));
    }
    /* (wte + wpe) + r and wte + (wpe + r) round apart: the losses agree to 1e-6, not bit for bit */
    check(lm_diff <= 1e-5 * lm_scale && m.mean_loss == clean_lm && fabsf(m.adversary.loss - perturbed_lm) < 1e-6f &&
          perturbed_lm > clean_lm, "FGM through the LM: gradient = clean + at x + r; losses kept",
          "max |diff| %.1e (tol 1e-5 of %.1e); loss %.5f clean, %.5f perturbed", lm_diff, lm_scale, clean_lm,
          perturbed_lm);
    gpt3_free(&m);
    gpt3_free(&twin);

    /* epsilon 0 is off: training is bit for bit the plain run */
    adversarial_model(&m, 150);
    adversarial_model(&twin, 150);
    gpt3_set_adversarial(&m, 1, 0.0f, 0.0f);
    for (int step = 1; step <= 3; step++) {
        GPT3 *both[2] = {&m, &twin};
        for (int k = 0; k < 2; k++) {
            gpt3_head_forward(both[k], inputs, lengths, label, 2, T);
            gpt3_zero_grad(both[k]);
            gpt3_head_backward(both[k]);
            gpt3_adamw_step(both[k], 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
        }
    }
    int same = memcmp(m.params, twin.params, m.num_parameters * sizeof(float)) == 0;
    int bad = gpt3_set_adversarial(&m, 2, 0.5f, 0.0f) == GPT3_ERR_ARGUMENT &&
              gpt3_set_adversarial(&m, 1, -1.0f, 0.0f) == GPT3_ERR_ARGUMENT &&
              gpt3_set_adversarial(&m, 1, NAN, 0.0f) == GPT3_ERR_ARGUMENT;
    check(same && bad, "adversarial: epsilon 0 = a plain run, bit for bit; bad settings refused",
          "parameters after 3 steps identical: %s; PGD without alpha, negative or NaN epsilon refused: %s",
          same ? "yes" : "no", bad ? "yes" : "no");
    gpt3_free(&m);
    gpt3_free(&twin);
    free(r);
    free(g);
    free(unit);
}

/* ---- Prediction (step 5) ---- */

static void test_prediction(void) {
    GPT3Config cfg = small_config(3);
    cfg.vocab_size = 256; /* bytes: the tokenizer beside the model is none */
    cfg.max_seq_len = 16;
    GPT3 m, back;
    GPT3Tokenizer tok;
    gpt3_init(&m, &cfg, 160);
    static const char *const names[2] = {"neg", "pos"}, *const tags[3] = {"O", "B-X", "I-X"};
    gpt3_head_attach(&m, GPT3_HEAD_BINARY, 1, 161);
    perturb(m.head->params, 9, 4.0f, 162);
    gpt3_head_set_names(&m, names, 2);
    gpt3_save(&m, "test_pred.ckpt");
    gpt3_head_save(&m, "test_pred.ckpt.head");
    int rc = gpt3_load_finetuned(&back, &tok, "test_pred.ckpt");
    float p[2] = {0, 0};
    int cut = -1, ids[5] = {'h', 'e', 'l', 'l', 'o'};
    if (rc == GPT3_OK) rc = gpt3_classify(&back, &tok, "hello", 5, p, &cut);
    if (rc == GPT3_OK) rc = gpt3_head_forward(&m, ids, NULL, NULL, 1, 5);
    float want = rc == GPT3_OK ? 1.0f / (1.0f + expf(-m.head->logits[0])) : -1.0f;
    int named = rc == GPT3_OK && back.head->num_names == 2 && strcmp(back.head->names[1], "pos") == 0;
    check(rc == GPT3_OK && fabsf(p[1] - want) < 1e-6f && fabsf(p[0] + p[1] - 1.0f) < 1e-6f && cut == 0 && named,
          "predict: load the fine-tuned files, classify a text", "%s: P(pos) %.6f, sigmoid(z) %.6f, names %s",
          gpt3_strerror(rc), p[1], want, named ? "kept" : "LOST");
    char longer[40];
    memset(longer, 'a', sizeof(longer));
    rc = gpt3_classify(&back, &tok, longer, sizeof(longer), p, &cut);
    int wrong = gpt3_tag_words(&back, &tok, names, 2, ids, NULL);
    check(rc == GPT3_OK && cut == 1 && wrong == GPT3_ERR_ARGUMENT, "predict: a text past the context is cut, and said",
          "%s, cut %d; tags from a sequence head: %s", gpt3_strerror(rc), cut, gpt3_strerror(wrong));
    gpt3_free(&back);
    gpt3_tokenizer_free(&tok);
    gpt3__free_head(&m);

    /* tags: words as fine-tuning tokenized them, each read off its first token */
    gpt3_head_attach(&m, GPT3_HEAD_TAGS, 3, 163);
    perturb(m.head->params, 27, 4.0f, 164);
    gpt3_head_set_names(&m, tags, 3);
    gpt3_tokenizer_bytes(&tok);
    const char *words[3] = {"ab", "c", "defgh"};
    int first[3], tagged[3], *wids = NULL;
    size_t n_ids = 0;
    float wp[3];
    rc = gpt3_encode_words(&tok, words, 3, &wids, &n_ids, first);
    int layout = rc == GPT3_OK && n_ids == 10 && first[0] == 0 && first[1] == 2 && first[2] == 4 &&
                 wids[2] == ' ' && wids[4] == ' ' && wids[5] == 'd';
    float probs[10 * 3];
    if (rc == GPT3_OK) rc = gpt3_head_probabilities(&m, wids, NULL, 1, (int)n_ids, probs);
    if (rc == GPT3_OK) rc = gpt3_tag_words(&m, &tok, words, 3, tagged, wp);
    int agree = rc == GPT3_OK;
    for (int w = 0; agree && w < 3; w++) {
        const float *row = probs + first[w] * 3;
        int best = row[1] > row[0] ? 1 : 0;
        best = row[2] > row[best] ? 2 : best;
        agree = tagged[w] == best && wp[w] == row[best];
    }
    const char *many[7] = {"one", "two", "three", "four", "five", "six", "seven"}; /* 31 bytes > 16 */
    int many_tags[7];
    int rc2 = gpt3_tag_words(&m, &tok, many, 7, many_tags, NULL);
    int past = rc2 == GPT3_OK && many_tags[2] >= 0 && many_tags[3] == -1 && many_tags[6] == -1; /* 13 tokens, then 18 */
    check(layout && agree && past, "predict: words tagged from their first tokens; words past the context -1",
          "layout %s, tags = argmax of the first tokens %s, past the context %s", layout ? "ok" : "WRONG",
          agree ? "yes" : "no", past ? "-1" : "WRONG");
    free(wids);
    gpt3_tokenizer_free(&tok);
    gpt3_free(&m);
    remove("test_pred.ckpt");
    remove("test_pred.ckpt.head");
}

/* ---- In-context scoring ---- */

/* log p(choice | context) from gpt3_forward's logits, one sequence at a time. */
static double naive_logprob(GPT3 *m, const int *context, int n_context, const int *choice, int n) {
    int x[16];
    memcpy(x, context, (size_t)n_context * sizeof(int));
    memcpy(x + n_context, choice, (size_t)n * sizeof(int));
    gpt3_forward(m, x, NULL, 1, n_context + n);
    double sum = 0.0;
    int V = m->config.vocab_size;
    for (int j = 0; j < n; j++) {
        const float *z = m->logits + (size_t)(n_context - 1 + j) * V;
        double lse = 0.0, top = z[0];
        for (int v = 1; v < V; v++) top = fmax(top, z[v]);
        for (int v = 0; v < V; v++) lse += exp(z[v] - top);
        sum += z[choice[j]] - top - log(lse);
    }
    return sum;
}

static void test_score_choices(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    gpt3_init(&m, &cfg, 170);
    perturb(m.params, m.num_parameters, 0.5f, 171);
    int context[4] = {3, 1, 4, 1}, a[2] = {5, 9}, b[3] = {2, 6, 5}, c[1] = {3};
    const int *choices[3] = {a, b, c};
    int n[3] = {2, 3, 1}, greedy[3];
    double got[3], worst = 0.0;
    int rc = gpt3_score_choices(&m, context, 4, choices, n, 3, got, greedy);
    for (int i = 0; rc == GPT3_OK && i < 3; i++)
        worst = fmax(worst, fabs(got[i] - naive_logprob(&m, context, 4, choices[i], n[i])) / fabs(got[i]));
    /* a choice of the most likely tokens is greedy */
    int best[2];
    gpt3_forward(&m, context, NULL, 1, 4);
    best[0] = gpt3__argmax(m.logits + 3 * 11, 11);
    int ctx1[5] = {3, 1, 4, 1, best[0]};
    gpt3_forward(&m, ctx1, NULL, 1, 5);
    best[1] = gpt3__argmax(m.logits + 4 * 11, 11);
    const int *top[1] = {best};
    int two[1] = {2}, is_greedy = 0;
    double lp;
    int rc2 = gpt3_score_choices(&m, context, 4, top, two, 1, &lp, &is_greedy);
    int too_long = gpt3_score_choices(&m, context, 4, choices, (const int[]){2, 5, 1}, 3, got, NULL);
    int empty = gpt3_score_choices(&m, context, 4, choices, (const int[]){2, 0, 1}, 3, got, NULL);
    check(rc == GPT3_OK && worst < 1e-5 && rc2 == GPT3_OK && is_greedy && too_long == GPT3_ERR_SEQ_LEN &&
          empty == GPT3_ERR_ARGUMENT, "score choices: = log-softmax of the forward, one choice at a time",
          "max rel diff %.1e (tol 1e-5); greedy choice seen %s; 4 + 5 > 8 -> %s; an empty choice -> %s", worst,
          is_greedy ? "yes" : "no", gpt3_strerror(too_long), gpt3_strerror(empty));
    gpt3_free(&m);
}

/* Merged adapters give the same logits as the adapters themselves. */
static void test_lora_merge(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int inputs[8];
    random_tokens(inputs, 8, cfg.vocab_size, 93);
    gpt3_init(&m, &cfg, 94);
    gpt3_lora_attach(&m, 3, 6.0f, 95);
    perturb(m.lora->params, m.lora->num_parameters, 0.5f, 96);
    gpt3_forward(&m, inputs, NULL, 1, 8);
    float *with = alloc_floats(8 * (size_t)cfg.vocab_size);
    memcpy(with, m.logits, 8 * (size_t)cfg.vocab_size * sizeof(float));
    int rc = gpt3_lora_merge(&m);
    gpt3_forward(&m, inputs, NULL, 1, 8);
    double e = rel_error(m.logits, with, 8 * (size_t)cfg.vocab_size);
    check(rc == GPT3_OK && m.lora == NULL && e < 1e-5, "LoRA: merged weights = adapters", "rel err %.1e (tol 1e-5)", e);
    free(with);
    /* a checkpoint cannot hold adapters: saving them unmerged is refused */
    const char *path = "test_lora_unmerged.ckpt";
    remove(path);
    gpt3_lora_attach(&m, 2, 4.0f, 97);
    GPT3TrainState st = {1, 0, 0, 0};
    int save = gpt3_save(&m, path), save_run = gpt3_save_run(&m, &st, path);
    int save_state = gpt3_save_state(&m, &st, path);
    FILE *f = fopen(path, "rb");
    check(save == GPT3_ERR_LORA && save_run == GPT3_ERR_LORA && save_state == GPT3_ERR_LORA && !f,
          "LoRA: a save before the merge is refused", "-> %s", gpt3_strerror(save));
    if (f) fclose(f);
    gpt3_free(&m);
}

/* A right-padded sequence gives its head the same logits as alone. */
/* ------------------------------------------------------------------------ */
/* Head files, and what a corrupt file may make a loader allocate           */

/* A header of 16 uint32 for a head file, then `floats` zeros. */
static void write_head(const char *path, uint32_t kind, uint32_t K, uint32_t C, size_t floats) {
    uint32_t header[16] = {0x44454847, 1, kind, K, C};
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(header, 4, 16, f);
    for (size_t i = 0; i < floats; i++) fwrite("\0\0\0\0", 4, 1, f);
    fclose(f);
}


/* Fine-tuning's resume point: a model set up with a head, adapters and a
   soft prompt (top block training) takes steps, keeps a snapshot, is saved;
   a fresh set-up loads it and continues: the same bits as the run that
   never stopped. What does not fit is refused and changes nothing. */
static void tuned_setup(GPT3 *m, int trainable, int head_kind) {
    GPT3Config cfg = small_config(3);
    gpt3_init(m, &cfg, 120);
    gpt3_head_attach(m, head_kind, 3, 121);
    gpt3_lora_attach(m, 2, 4.0f, 122);
    gpt3_prompt_attach(m, 2, NULL, 0, 123);
    gpt3_freeze(m, trainable);
}

static void head_steps(GPT3 *m, int first, int last) {
    /* labels: a sequence head reads the first B; room for (B, T) all the same */
    static const int inputs[10] = {1, 5, 2, 9, 0, 3, 10, 4, 4, 7}, lengths[2] = {5, 3}, cls[10] = {2, 0};
    for (int step = first; step <= last; step++) {
        gpt3_head_forward(m, inputs, lengths, cls, 2, 5);
        gpt3_zero_grad(m);
        gpt3_head_backward(m);
        gpt3_adamw_step(m, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
    }
}

static int same_floats(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static int same_trained(const GPT3 *a, const GPT3 *b) {
    return same_floats(a->params, b->params, a->num_parameters) &&
           same_floats(a->lora->params, b->lora->params, a->lora->num_parameters) &&
           same_floats(a->head->params, b->head->params, 27) && same_floats(a->prompt->params, b->prompt->params, 16);
}

static void test_tuning_resume(void) {
    GPT3 a, b, c;
    GPT3Snapshot best_a = {{0}, {0}}, best_b = {{0}, {0}};
    uint64_t counters[3] = {2, 0x0123456789abcdefULL, 7}, back[3] = {0};
    tuned_setup(&a, 1, GPT3_HEAD_CLASSES);
    head_steps(&a, 1, 2);
    int rc_take = gpt3_snapshot_take(&a, &best_a);
    head_steps(&a, 3, 3);
    int rc_save = gpt3_save_tuning(&a, &best_a, counters, 3, "test_tuning.state");
    tuned_setup(&b, 1, GPT3_HEAD_CLASSES);
    int rc_load = gpt3_load_tuning(&b, &best_b, back, 3, "test_tuning.state");
    int loaded = rc_take == GPT3_OK && rc_save == GPT3_OK && rc_load == GPT3_OK && same_trained(&a, &b) &&
                 memcmp(counters, back, sizeof(back)) == 0;
    head_steps(&a, 4, 5);
    head_steps(&b, 4, 5);
    int continued = same_trained(&a, &b);
    gpt3_snapshot_restore(&a, &best_a);
    int rc_restore = gpt3_snapshot_restore(&b, &best_b);
    int restored = rc_restore == GPT3_OK && same_trained(&a, &b);
    check(loaded && continued && restored, "fine-tuning resume: save, load, continue",
          "load %s; 2 more steps %s; the best snapshot %s", gpt3_strerror(rc_load),
          continued ? "bit-identical" : "DIFFER", restored ? "back" : "LOST");

    /* what does not fit the file: refused, and the model is unchanged */
    size_t P = a.num_parameters;
    float *before = (float *)malloc(P * sizeof(float));
    struct { const char *label; int trainable, kind, counters, want; } misfits[] = {
        {"fine-tuning resume: another head kind", 1, GPT3_HEAD_TAGS, 3, GPT3_ERR_MISMATCH},
        {"fine-tuning resume: other frozen blocks", 2, GPT3_HEAD_CLASSES, 3, GPT3_ERR_MISMATCH},
        {"fine-tuning resume: other counters", 1, GPT3_HEAD_CLASSES, 2, GPT3_ERR_MISMATCH},
    };
    for (size_t i = 0; i < sizeof(misfits) / sizeof(misfits[0]); i++) {
        tuned_setup(&c, misfits[i].trainable, misfits[i].kind);
        memcpy(before, c.params, P * sizeof(float));
        int got = gpt3_load_tuning(&c, &best_b, back, misfits[i].counters, "test_tuning.state");
        check(got == misfits[i].want && same_floats(before, c.params, P) && !c.adam_m, misfits[i].label, "-> %s",
              gpt3_strerror(got));
        gpt3_free(&c);
    }
    /* bytes cut, added or changed */
    size_t n = 0;
    unsigned char *saved = read_all("test_tuning.state", &n);
    struct { const char *label; size_t length; long at; int want; } damaged[] = {
        {"fine-tuning resume: a file cut short", n - 4, -1, GPT3_ERR_TRUNCATED},
        {"fine-tuning resume: bytes after the end", n + 4, -1, GPT3_ERR_CORRUPT},
        {"fine-tuning resume: a changed parameter", n, 128 + 3 * 8 + 100, GPT3_ERR_CORRUPT},
        {"fine-tuning resume: another file's magic", n, 0, GPT3_ERR_NOT_CHECKPOINT},
    };
    for (size_t i = 0; saved && i < sizeof(damaged) / sizeof(damaged[0]); i++) {
        unsigned char *copy = (unsigned char *)calloc(n + 4, 1);
        memcpy(copy, saved, n);
        if (damaged[i].at >= 0) copy[damaged[i].at] ^= 0x40;
        write_bytes("test_tuning_bad.state", copy, damaged[i].length);
        tuned_setup(&c, 1, GPT3_HEAD_CLASSES);
        memcpy(before, c.params, P * sizeof(float));
        int got = gpt3_load_tuning(&c, &best_b, back, 3, "test_tuning_bad.state");
        check(got == damaged[i].want && same_floats(before, c.params, P), damaged[i].label, "-> %s",
              gpt3_strerror(got));
        gpt3_free(&c);
        free(copy);
    }
    free(saved);
    gpt3_free(&a);
    gpt3_free(&b);

    /* a frozen model is not in the file: its checkpoint must be the same */
    tuned_setup(&a, 0, GPT3_HEAD_CLASSES);
    head_steps(&a, 1, 2);
    int rc_frozen = gpt3_save_tuning(&a, NULL, counters, 3, "test_tuning.state");
    size_t frozen_bytes = 0;
    free(read_all("test_tuning.state", &frozen_bytes));
    tuned_setup(&b, 0, GPT3_HEAD_CLASSES);
    int rc_same = gpt3_load_tuning(&b, &best_b, back, 3, "test_tuning.state");
    int resumed = rc_same == GPT3_OK && same_trained(&a, &b) && !best_b.copies[0] && !best_b.copies[2];
    b.params[5] += 1.0f; /* another base checkpoint */
    int rc_other = gpt3_load_tuning(&b, &best_b, back, 3, "test_tuning.state");
    size_t trained = a.lora->num_parameters + 27 + 16;
    check(rc_frozen == GPT3_OK && resumed && rc_other == GPT3_ERR_MISMATCH && frozen_bytes == 128 + 3 * 8 + 12 * trained,
          "fine-tuning resume: a frozen model stays out", "%zu bytes (3 x %zu trained floats); another base -> %s",
          frozen_bytes, trained, gpt3_strerror(rc_other));
    /* a snapshot of one set-up does not go into another */
    GPT3Snapshot other = {{0}, {0}};
    tuned_setup(&c, 1, GPT3_HEAD_CLASSES);
    int rc_take_other = gpt3_snapshot_take(&c, &other), rc_into = gpt3_snapshot_restore(&a, &other);
    int rc_retake = gpt3_snapshot_take(&a, &other);
    check(rc_take_other == GPT3_OK && rc_into == GPT3_ERR_MISMATCH && rc_retake == GPT3_ERR_MISMATCH,
          "snapshot: refused by another set-up", "restore -> %s; take -> %s", gpt3_strerror(rc_into),
          gpt3_strerror(rc_retake));
    gpt3_snapshot_free(&other);
    gpt3_snapshot_free(&best_a);
    gpt3_snapshot_free(&best_b);
    gpt3_free(&a);
    gpt3_free(&b);
    gpt3_free(&c);
    free(before);
    remove("test_tuning.state");
    remove("test_tuning_bad.state");
}
static void test_head_files(void) {
    GPT3Config cfg = small_config(0);
    GPT3 a, b;
    gpt3_init(&a, &cfg, 90);
    gpt3_init(&b, &cfg, 90);
    gpt3_head_attach(&a, GPT3_HEAD_CLASSES, 3, 91);
    size_t n = 3 * (size_t)(cfg.channels + 1);
    int rc1 = gpt3_head_save(&a, "test_head.bin"), rc2 = gpt3_head_load(&b, "test_head.bin");
    int same = rc1 == GPT3_OK && rc2 == GPT3_OK && b.head->kind == GPT3_HEAD_CLASSES &&
               b.head->num_classes == 3 && memcmp(a.head->params, b.head->params, n * 4) == 0;
    check(same, "head file: save and load", "3 classes, C %d: %s", cfg.channels, same ? "the same" : "differ");
    gpt3_free(&b);
    /* class names travel with the head; a file of version 1 (no names) loads */
    const char *names[3] = {"negative", "neutral", "positive"};
    int rc_names = gpt3_head_set_names(&a, names, 3), rc_two = gpt3_head_set_names(&a, names, 2);
    gpt3_head_save(&a, "test_head.bin");
    gpt3_init(&b, &cfg, 90);
    int rc_back = gpt3_head_load(&b, "test_head.bin");
    int named = rc_names == GPT3_OK && rc_two == GPT3_ERR_ARGUMENT && rc_back == GPT3_OK && b.head->num_names == 3 &&
                strcmp(b.head->names[0], "negative") == 0 && strcmp(b.head->names[2], "positive") == 0;
    gpt3_free(&b);
    write_head("test_head.bin", GPT3_HEAD_CLASSES, 3, 8, 27); /* version 1 */
    gpt3_init(&b, &cfg, 90);
    int v1 = gpt3_head_load(&b, "test_head.bin") == GPT3_OK && b.head->num_names == 0;
    gpt3_free(&b);
    check(named && v1, "head file: class names saved and loaded; version 1 loads",
          "names %s; 2 names for 3 classes -> %s; version 1 %s", named ? "back" : "LOST", gpt3_strerror(rc_two),
          v1 ? "loads" : "REFUSED");
    /* names that break the rules: empty, with a NUL, cut short, bytes after them */
    gpt3_head_save(&a, "test_head.bin");
    size_t head_bytes;
    unsigned char *saved = read_all("test_head.bin", &head_bytes);
    size_t first = 64 + 27 * 4; /* the first name's length */
    struct { const char *label; int at, value; size_t length; int want; } names_bad[] = {
        {"head file: an empty name", (int)first, 0, head_bytes, GPT3_ERR_CORRUPT},
        {"head file: a NUL in a name", (int)first + 5, 0, head_bytes, GPT3_ERR_CORRUPT},
        {"head file: names cut short", -1, 0, head_bytes - 3, GPT3_ERR_TRUNCATED},
        {"head file: bytes after the names", -1, 0, head_bytes + 2, GPT3_ERR_CORRUPT},
    };
    for (size_t i = 0; saved && i < sizeof(names_bad) / sizeof(names_bad[0]); i++) {
        unsigned char *copy = (unsigned char *)calloc(head_bytes + 2, 1);
        memcpy(copy, saved, head_bytes);
        if (names_bad[i].at >= 0) copy[names_bad[i].at] = (unsigned char)names_bad[i].value;
        write_bytes("test_head.bin", copy, names_bad[i].length);
        gpt3_init(&b, &cfg, 90);
        int got = gpt3_head_load(&b, "test_head.bin");
        check(got == names_bad[i].want && !b.head, names_bad[i].label, "-> %s", gpt3_strerror(got));
        gpt3_free(&b);
        free(copy);
    }
    /* version 2 (names, no prompt) is version 3's bytes without a prompt;
       a prompt's length is checked against the model and the file */
    struct { const char *label; int version, K, N; size_t length; int want; } prompt_cases[] = {
        {"head file: version 2 (before soft prompts) loads", 2, 3, 0, head_bytes, GPT3_OK},
        {"head file: a prompt as long as the context", 3, 3, 8, head_bytes + 8 * 8 * 4, GPT3_ERR_CORRUPT},
        {"head file: a prompt cut short", 3, 3, 2, head_bytes + 8 * 4, GPT3_ERR_TRUNCATED},
        {"head file: neither a head nor a prompt", 3, 0, 0, 64, GPT3_ERR_CORRUPT},
    };
    for (size_t i = 0; saved && i < sizeof(prompt_cases) / sizeof(prompt_cases[0]); i++) {
        unsigned char *copy = (unsigned char *)calloc(head_bytes + 8 * 8 * 4, 1);
        memcpy(copy, saved, head_bytes);
        copy[4] = (unsigned char)prompt_cases[i].version;
        copy[12] = (unsigned char)prompt_cases[i].K;
        copy[28] = (unsigned char)prompt_cases[i].N;
        if (prompt_cases[i].K == 0) copy[8] = copy[24] = 0; /* kind, names */
        write_bytes("test_head.bin", copy, prompt_cases[i].length);
        gpt3_init(&b, &cfg, 90);
        int got = gpt3_head_load(&b, "test_head.bin");
        int loaded = got == GPT3_OK && b.head && b.head->num_names == 3 && !b.prompt;
        check(got == prompt_cases[i].want && (got != GPT3_OK || loaded) && (got == GPT3_OK || (!b.head && !b.prompt)),
              prompt_cases[i].label, "-> %s", gpt3_strerror(got));
        gpt3_free(&b);
        free(copy);
    }
    free(saved);
    gpt3_head_save(&a, "test_head.bin");
    /* beside other parameters (a model saved after its head, or another's) */
    gpt3_init(&b, &cfg, 91);
    int other = gpt3_head_load(&b, "test_head.bin");
    check(other == GPT3_ERR_MISMATCH && !b.head, "head file: refused for another model's parameters", "-> %s",
          gpt3_strerror(other));
    gpt3_free(&b);
    struct { const char *label; uint32_t kind, K, C; size_t floats; int want; } bad[] = {
        {"head file: cut short", GPT3_HEAD_CLASSES, 3, 8, 20, GPT3_ERR_TRUNCATED},
        {"head file: 2^20 classes in 64 bytes", GPT3_HEAD_TAGS, 1u << 20, 8, 0, GPT3_ERR_TRUNCATED},
        {"head file: an unknown kind", 7, 3, 8, 27, GPT3_ERR_CORRUPT},
        {"head file: binary with 3 logits", GPT3_HEAD_BINARY, 3, 8, 27, GPT3_ERR_CORRUPT},
        {"head file: one class", GPT3_HEAD_CLASSES, 1, 8, 9, GPT3_ERR_CORRUPT},
        {"head file: other channels", GPT3_HEAD_CLASSES, 3, 16, 51, GPT3_ERR_MISMATCH},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_head("test_head.bin", bad[i].kind, bad[i].K, bad[i].C, bad[i].floats);
        gpt3_init(&b, &cfg, 90);
        test_alloc_largest = 0;
        int rc = gpt3_head_load(&b, "test_head.bin");
        check(rc == bad[i].want && !b.head && test_alloc_largest < 4096, bad[i].label,
              "-> %s; largest allocation %zu bytes", gpt3_strerror(rc), test_alloc_largest);
        gpt3_free(&b);
    }
    int rc = gpt3_head_attach(&a, GPT3_HEAD_CLASSES, 1, 1); /* a has a head already */
    gpt3_free(&a);
    gpt3_init(&a, &cfg, 90);
    int one = gpt3_head_attach(&a, GPT3_HEAD_CLASSES, 1, 1);
    check(rc == GPT3_ERR_ARGUMENT && one == GPT3_ERR_ARGUMENT && !a.head, "head: one class is refused",
          "-> %s", gpt3_strerror(one));
    /* a training state that says moments follow, cut short: refused before
       the moments are allocated */
    GPT3TrainState st = {1, 0, 0, 0};
    train_steps(&a, (const int[]){1, 2, 3, 4}, (const int[]){2, 3, 4, 5}, 1, 4, 1, 1e-3f);
    gpt3_save_state(&a, &st, "test_head.state");
    size_t bytes;
    unsigned char *state = read_all("test_head.state", &bytes);
    if (state) write_bytes("test_head.state", state, 256 + 100);
    test_alloc_largest = 0;
    rc = gpt3_load_state(&a, &st, "test_head.state");
    check(rc == GPT3_ERR_TRUNCATED && test_alloc_largest < a.num_parameters * 4, "training state: cut short",
          "-> %s; largest allocation %zu bytes (the moments: %zu)", gpt3_strerror(rc), test_alloc_largest,
          a.num_parameters * 4);
    free(state);
    gpt3_free(&a);
    /* a checkpoint of 1 MB with a context of 2^18 (C 1): loading it
       allocates what it holds, not the attention's scratch for 2^18
       positions (2 KB a position and thread), which waits for a forward */
    GPT3Config longest = {1 << 18, 1, 1, 1, 1, 0};
    gpt3_init(&a, &longest, 1);
    gpt3_save(&a, "test_head.ckpt");
    gpt3_free(&a);
    test_alloc_largest = 0;
    rc = gpt3_load(&a, "test_head.ckpt");
    check(rc == GPT3_OK && test_alloc_largest < ((size_t)16 << 20), "checkpoint: a long context loads small",
          "1 MB file, context 2^18: largest allocation %.1f MB", test_alloc_largest / 1e6);
    gpt3_free(&a);
    remove("test_head.ckpt");
    remove("test_head.bin");
    remove("test_head.state");
}

/* ------------------------------------------------------------------------ */
/* Out of memory: every allocation in turn fails                            */

/* Each operation builds, uses and frees what it needs, and returns the
   first error a call gave (GPT3_OK if none). */
typedef int (*AllocOp)(void);

static int first_error(int rc, int next) { return rc != GPT3_OK ? rc : next; }

static int op_model(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    GPT3KVCache kv;
    int in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, labels[8] = {0, 2}, rc = gpt3_init(&m, &cfg, 1);
    if (rc != GPT3_OK) return rc;
    rc = first_error(rc, gpt3_forward(&m, in, in, 2, 4));
    if (rc == GPT3_OK) rc = gpt3_backward(&m);
    if (rc == GPT3_OK) rc = gpt3_adamw_step(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1);
    if (rc == GPT3_OK) rc = gpt3_lora_attach(&m, 2, 4.0f, 1);
    static const char *const names[3] = {"a", "b", "c"};
    if (rc == GPT3_OK) rc = gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 3, 1);
    if (rc == GPT3_OK) rc = gpt3_head_set_names(&m, names, 3);
    if (rc == GPT3_OK) rc = gpt3_head_forward(&m, in, NULL, labels, 2, 4);
    if (rc == GPT3_OK) rc = gpt3_head_backward(&m);
    if (rc == GPT3_OK) rc = gpt3_adamw_step(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 2);
    if (rc == GPT3_OK) rc = gpt3_prompt_attach(&m, 2, NULL, 0, 1);
    GPT3Snapshot best = {{0}, {0}};
    if (rc == GPT3_OK) rc = gpt3_snapshot_take(&m, &best);
    if (rc == GPT3_OK) rc = gpt3_snapshot_restore(&m, &best);
    gpt3_snapshot_free(&best);
    if (rc == GPT3_OK) rc = gpt3_set_adversarial(&m, 2, 0.5f, 0.3f); /* PGD: r and the saved gradients */
    if (rc == GPT3_OK) rc = gpt3_head_forward(&m, in, NULL, labels, 2, 3);
    if (rc == GPT3_OK) rc = gpt3_head_backward(&m);
    if (rc == GPT3_OK && (rc = gpt3_kv_init(&kv, &m)) == GPT3_OK) {
        rc = gpt3_kv_forward(&m, &kv, 3);
        gpt3_kv_free(&kv);
    }
    gpt3_free(&m);
    return rc;
}

static int op_files(void) { /* the files op_model's fixtures wrote */
    GPT3 m;
    GPT3TrainState st;
    GPT3Tokens t;
    GPT3DataLoader dl;
    int rc = gpt3_load(&m, "test_oom.ckpt");
    if (rc != GPT3_OK) return rc;
    rc = first_error(rc, gpt3_load_state(&m, &st, "test_oom.ckpt.state"));
    if (rc == GPT3_OK) rc = gpt3_head_load(&m, "test_oom.head");
    if (rc == GPT3_OK) { /* fine-tuning's resume point, with a snapshot */
        GPT3Snapshot best = {{0}, {0}};
        uint64_t counters[2];
        rc = gpt3_load_tuning(&m, &best, counters, 2, "test_oom.tuning");
        gpt3_snapshot_free(&best);
    }
    if (rc == GPT3_OK) rc = gpt3_adamw_shard(&m, 1, 2); /* ZeRO-1: the moments cut to a share */
    gpt3_free(&m);
    GPT3Tokenizer tok;
    if (rc == GPT3_OK && (rc = gpt3_load_finetuned(&m, &tok, "test_oom_bytes.ckpt")) == GPT3_OK) {
        const char *words[2] = {"a", "b"};
        int tags[2];
        rc = gpt3_tag_words(&m, &tok, words, 2, tags, NULL); /* the .head beside it: a tag head */
        gpt3_free(&m);
        gpt3_tokenizer_free(&tok);
    }
    if (rc == GPT3_OK && (rc = gpt3_tokens_load(&t, "test_oom.tok")) == GPT3_OK) {
        rc = gpt3_loader_init(&dl, &t, 2, 4, 1, 1);
        gpt3_loader_free(&dl);
        gpt3_tokens_free(&t);
    }
    return rc;
}

static int op_tokenizer(void) {
    GPT3Tokenizer tok;
    static const char text[] = "the cat sat on the mat, the cat ate the rat; \xff\xfe caf\xc3\xa9 123";
    int *ids = NULL;
    size_t n_ids = 0, n_text;
    unsigned char *back = NULL;
    int rc = gpt3_tokenizer_load(&tok, "test_oom_encoder.json", "test_oom_vocab.bpe");
    if (rc != GPT3_OK) return rc;
    rc = gpt3_encode(&tok, text, sizeof(text) - 1, &ids, &n_ids);
    if (rc == GPT3_OK) rc = gpt3_decode(&tok, ids, n_ids, &back, &n_text);
    free(ids);
    free(back);
    gpt3_tokenizer_free(&tok);
    if (rc == GPT3_OK && (rc = gpt3_tokenizer_train(&tok, text, sizeof(text) - 1, 270)) == GPT3_OK) {
        rc = gpt3_tokenizer_save(&tok, "test_oom_saved.json", "test_oom_saved.bpe");
        gpt3_tokenizer_free(&tok);
    }
    return rc;
}

static int op_reports(void) {
    const char *tags[3] = {"O", "B-PER", "I-PER"};
    int gold[6] = {0, 1, 2, -1, 1, 0}, pred[6] = {0, 1, 0, -1, 1, 0};
    GPT3Report r;
    GPT3Sampler s;
    float logits[3] = {1.0f, 2.0f, 0.5f};
    int rc = gpt3_report_entities(&r, gold, pred, 6, tags, 3);
    gpt3_report_free(&r);
    if (rc == GPT3_OK) rc = gpt3_report_classes(&r, pred, pred, 6, 3);
    gpt3_report_free(&r);
    if (rc == GPT3_OK && (rc = gpt3_sampler_init(&s, 3, 1.0f, 2, 0.9f, 1)) == GPT3_OK) {
        rc = gpt3_sampler_sample(&s, logits) >= 0 ? GPT3_OK : GPT3_ERR_ARGUMENT;
        gpt3_sampler_free(&s);
    }
    return rc;
}

/* Fail allocation 0, then 1, 2, ... of op until it runs without failing:
   each run must give GPT3_ERR_NOMEM (and, under the sanitizers, leak
   nothing and touch no freed or unset memory). */
static void expect_nomem_everywhere(const char *label, AllocOp op) {
    long n = 0, wrong = 0, first_wrong = -1;
    int rc, wrong_rc = GPT3_OK;
    for (;; n++) {
        test_alloc_countdown = n;
        rc = op();
        int failed_one = test_alloc_countdown < 0;
        test_alloc_countdown = -1;
        if (!failed_one) break;
        if (rc != GPT3_ERR_NOMEM && wrong++ == 0) {
            first_wrong = n;
            wrong_rc = rc;
        }
    }
    check(rc == GPT3_OK && wrong == 0, label, "%ld allocations each failed in turn: %ld not reported as out of memory%s%s",
          n, wrong, wrong ? "; first: allocation " : "", wrong ? gpt3_strerror(wrong_rc) : "");
    (void)first_wrong;
}

static void test_out_of_memory(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    GPT3TrainState st = {1, 0, 0, 0};
    uint16_t tokens[40];
    char *encoder = small_encoder("");
    gpt3_init(&m, &cfg, 1);
    train_steps(&m, (const int[]){1, 2, 3, 4}, (const int[]){2, 3, 4, 5}, 1, 4, 1, 1e-3f);
    static const char *const tags[3] = {"O", "B-X", "I-X"};
    gpt3_head_attach(&m, GPT3_HEAD_TAGS, 3, 1);
    gpt3_head_set_names(&m, tags, 3);
    GPT3Snapshot best = {{0}, {0}};
    uint64_t counters[2] = {1, 2};
    gpt3_snapshot_take(&m, &best);
    gpt3_save_tuning(&m, &best, counters, 2, "test_oom.tuning");
    gpt3_snapshot_free(&best);
    gpt3_save(&m, "test_oom.ckpt");
    gpt3_save_state(&m, &st, "test_oom.ckpt.state");
    gpt3_head_save(&m, "test_oom.head");
    gpt3_free(&m);
    cfg.vocab_size = 256; /* a fine-tuned model of bytes: no tokenizer files */
    gpt3_init(&m, &cfg, 1);
    gpt3_head_attach(&m, GPT3_HEAD_TAGS, 3, 1);
    gpt3_prompt_attach(&m, 2, NULL, 0, 1);
    gpt3_save(&m, "test_oom_bytes.ckpt");
    gpt3_head_save(&m, "test_oom_bytes.ckpt.head");
    gpt3_free(&m);
    cfg.vocab_size = 11;
    for (int i = 0; i < 40; i++) tokens[i] = (uint16_t)(i % cfg.vocab_size);
    gpt3_tokens_save("test_oom.tok", tokens, 40, cfg.vocab_size, 1);
    write_bytes("test_oom_encoder.json", encoder, strlen(encoder));
    write_bytes("test_oom_vocab.bpe", "#version: 0.2\na b\n", 18);
    expect_nomem_everywhere("out of memory: model, head, LoRA, KV cache", op_model);
    expect_nomem_everywhere("out of memory: loading every kind of file", op_files);
    expect_nomem_everywhere("out of memory: tokenizer load, encode, train", op_tokenizer);
    expect_nomem_everywhere("out of memory: reports and the sampler", op_reports);
    free(encoder);
    const char *files[] = {"test_oom.ckpt", "test_oom.ckpt.state", "test_oom.head", "test_oom.tuning", "test_oom_bytes.ckpt", "test_oom_bytes.ckpt.head", "test_oom.tok",
                           "test_oom_encoder.json", "test_oom_vocab.bpe", "test_oom_saved.json",
                           "test_oom_saved.bpe"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) remove(files[i]);
}

static void test_padding(void) {
    GPT3Config cfg = small_config(3);
    GPT3 m;
    int batch[16], lengths[2] = {8, 5}, alone[5];
    random_tokens(batch, 16, cfg.vocab_size, 97);
    for (int t = 5; t < 8; t++) batch[8 + t] = 0; /* padding */
    memcpy(alone, batch + 8, sizeof(alone));
    gpt3_init(&m, &cfg, 98);
    gpt3_head_attach(&m, GPT3_HEAD_CLASSES, 4, 99);
    gpt3_head_forward(&m, batch, lengths, NULL, 2, 8);
    float padded[4];
    memcpy(padded, m.head->logits + 4, sizeof(padded));
    gpt3_head_forward(&m, alone, NULL, NULL, 1, 5);
    double e = rel_error(padded, m.head->logits, 4);
    int bad_len[2] = {8, 9}, bad_label[2] = {0, 4};
    int rc1 = gpt3_head_forward(&m, batch, bad_len, NULL, 2, 8);
    int rc2 = gpt3_head_forward(&m, batch, lengths, bad_label, 2, 8);
    check(e < 1e-6 && rc1 == GPT3_ERR_ARGUMENT && rc2 == GPT3_ERR_TARGET, "heads: padding changes nothing; bad lengths/labels",
          "rel err %.1e; length > T -> %s; label 4 of 4 -> %s", e, gpt3_strerror(rc1), gpt3_strerror(rc2));
    /* more sequences in fewer tokens (B 1 T 16, then B 4 T 2): the head's
       buffers of B rows must grow though B T does not */
    int four[8], labels[4] = {0, 1, 2, 3};
    random_tokens(four, 8, cfg.vocab_size, 96);
    GPT3 fresh;
    gpt3_init(&fresh, &cfg, 98);
    gpt3_head_attach(&fresh, GPT3_HEAD_CLASSES, 4, 99);
    int rc3 = gpt3_head_forward(&fresh, four, NULL, labels, 4, 2);
    gpt3_head_forward(&m, batch, NULL, NULL, 1, 16);
    int rc4 = gpt3_head_forward(&m, four, NULL, labels, 4, 2);
    int same = rc3 == GPT3_OK && rc4 == GPT3_OK && memcmp(m.head->logits, fresh.head->logits, 16 * 4) == 0 &&
               m.head->mean_loss == fresh.head->mean_loss;
    check(same, "heads: B grows while B T shrinks", "B 1 T 16, then B 4 T 2: logits and loss %s",
          same ? "as a fresh model's" : "DIFFER from a fresh model's");
    gpt3_free(&fresh);
    gpt3_free(&m);
}

/* ------------------------------------------------------------------------ */
/* Evaluation reports, against examples worked by hand                      */

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_report_classes(void) {
    /* class 0: TP 1 of 2 predicted, 2 gold; class 1: TP 2 of 3, 2 gold;
       class 2: TP 1 of 1, 2 gold; one unlabelled example (gold -1) */
    int gold[7] = {0, 0, 1, 1, 2, 2, -1}, pred[7] = {0, 1, 1, 1, 2, 0, 2};
    GPT3Report r;
    int rc = gpt3_report_classes(&r, gold, pred, 7, 3);
    int ok = rc == GPT3_OK && near(r.accuracy, 4.0 / 6) && r.total == 6 &&
             near(r.per_class[0].precision, 0.5) && near(r.per_class[0].recall, 0.5) &&
             near(r.per_class[1].precision, 2.0 / 3) && near(r.per_class[1].recall, 1.0) &&
             near(r.per_class[1].f1, 0.8) && near(r.per_class[2].f1, 2.0 / 3) &&
             near(r.macro.f1, (0.5 + 0.8 + 2.0 / 3) / 3) && near(r.weighted.recall, 4.0 / 6) &&
             r.confusion[0 * 3 + 1] == 1 && r.confusion[2 * 3 + 0] == 1 && r.confusion[1 * 3 + 1] == 2;
    char text[2048];
    const char *names[3] = {"cat", "dog", "bird"};
    gpt3_report_format(&r, names, text, sizeof(text));
    ok &= strstr(text, "precision") && strstr(text, "macro avg") && strstr(text, "weighted avg") &&
          strstr(text, "confusion matrix") && strstr(text, "0.8000");
    check(ok, "report: classes = a hand-worked example", "accuracy %.4f, macro F1 %.4f", r.accuracy, r.macro.f1);
    gpt3_report_free(&r);
    int never[4] = {0, 0, 0, 0}, gold2[4] = {0, 1, 0, 1};
    rc = gpt3_report_classes(&r, gold2, never, 4, 2); /* class 1 never predicted: P 0, not NaN */
    ok = rc == GPT3_OK && r.per_class[1].precision == 0.0 && r.per_class[1].f1 == 0.0 && near(r.accuracy, 0.5);
    check(ok, "report: a class never predicted scores 0", "precision %.1f, F1 %.1f", r.per_class[1].precision, r.per_class[1].f1);
    gpt3_report_free(&r);
    int bad[1] = {5};
    rc = gpt3_report_classes(&r, bad, never, 1, 2);
    check(rc == GPT3_ERR_TARGET, "report: a label outside the classes", "-> %s", gpt3_strerror(rc));
}

static void test_report_entities(void) {
    const char *tags[5] = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"};
    /* sentence 1: PER(0,2) LOC(3,4) found exactly. sentence 2 (after the
       boundary -1): gold has two adjacent PER (B-PER B-PER), predicted one
       long PER: neither counts; I-LOC I-LOC after O is one LOC (no B-). */
    int gold[10] = {1, 2, 0, 3, -1, 1, 1, 0, 4, 4};
    int pred[10] = {1, 2, 0, 3, -1, 1, 2, 0, 4, 4};
    GPT3Report r;
    int rc = gpt3_report_entities(&r, gold, pred, 10, tags, 5);
    int per = rc == GPT3_OK && r.num_classes == 2 && strcmp(r.class_names[0], "PER") == 0 ? 0 : 1;
    int ok = rc == GPT3_OK && per == 0 && r.per_class[0].support == 3 && near(r.per_class[0].precision, 0.5) &&
             near(r.per_class[0].recall, 1.0 / 3) && near(r.per_class[0].f1, 0.4) &&
             r.per_class[1].support == 2 && near(r.per_class[1].f1, 1.0) &&
             near(r.micro.precision, 0.75) && near(r.micro.recall, 0.6) && near(r.micro.f1, 2 * 0.75 * 0.6 / 1.35);
    char text[2048], small[100];
    size_t needed = gpt3_report_format(&r, NULL, text, sizeof(text));
    ok &= strstr(text, "PER") && strstr(text, "micro avg") != NULL;
    /* cut short, it still says how long the whole text is */
    size_t needed_small = gpt3_report_format(&r, NULL, small, sizeof(small));
    check(needed == strlen(text) && needed_small == needed && strlen(small) == sizeof(small) - 1,
          "report: the length it needs, even cut short", "%zu bytes; into 100: %zu", needed, needed_small);
    check(ok, "report: entities, seqeval's rules", "PER P %.3f R %.3f F1 %.3f; micro F1 %.4f",
          rc == GPT3_OK ? r.per_class[0].precision : 0, rc == GPT3_OK ? r.per_class[0].recall : 0,
          rc == GPT3_OK ? r.per_class[0].f1 : 0, r.micro.f1);
    gpt3_report_free(&r);
    /* an I- of another type ends the entity and starts a new one */
    int g2[3] = {1, 4, 4}, p2[3] = {1, 2, 4};
    rc = gpt3_report_entities(&r, g2, p2, 3, tags, 5); /* gold PER(0,1) LOC(1,3); pred PER(0,2) LOC(2,3) */
    ok = rc == GPT3_OK && r.micro.support == 2 && near(r.micro.precision, 0.0);
    check(ok, "report: entities, I- of another type", "micro precision %.2f of %ld gold", r.micro.precision, r.micro.support);
    gpt3_report_free(&r);
    /* tags that are all O: no entity types, an empty report, not a crash */
    const char *only_o[1] = {"O"};
    int zeros[4] = {0, 0, -1, 0};
    rc = gpt3_report_entities(&r, zeros, zeros, 4, only_o, 1);
    text[0] = 0;
    size_t len = rc == GPT3_OK ? gpt3_report_format(&r, NULL, text, sizeof(text)) : 0;
    ok = rc == GPT3_OK && r.num_classes == 0 && r.micro.support == 0 && len > 0 &&
         strstr(text, "no entity types") && strstr(text, "micro avg");
    check(ok, "report: entities, every tag O", "%d types, micro support %ld; formatted: %s", r.num_classes,
          r.micro.support, strstr(text, "no entity types") ? "says so" : "(no note)");
    gpt3_report_free(&r);
}

/* Every public call takes NULL for each pointer it is given: an error code
   (GPT3_ERR_ARGUMENT), a zero, or nothing done; never a crash. */
/* Data parallelism's shares: N ranks tile a batch, in order, each B / N
   rows; a batch N does not divide, or a rank out of range, is refused. */
static void test_batch_share(void) {
    int next = 0, tiled = 1, first, count;
    for (int rank = 0; rank < 4; rank++) {
        tiled &= gpt3_batch_share(12, rank, 4, &first, &count) == GPT3_OK && first == next && count == 3;
        next = first + count;
    }
    int refused = gpt3_batch_share(10, 0, 4, &first, &count) == GPT3_ERR_ARGUMENT &&
                  gpt3_batch_share(12, 4, 4, &first, &count) == GPT3_ERR_ARGUMENT &&
                  gpt3_batch_share(12, -1, 4, &first, &count) == GPT3_ERR_ARGUMENT &&
                  gpt3_batch_share(12, 0, 0, &first, &count) == GPT3_ERR_ARGUMENT;
    check(tiled && next == 12 && refused, "data parallelism: 4 ranks' shares tile a batch of 12; 10, a rank 4 or -1, 0 ranks refused",
          "rows 0..%d covered", next - 1);
}

/* ZeRO-1 without MPI: 3 models with the same gradients, each updating its
   own share of the parameters and handing it to the others, must train
   to the bits of one model that updates them all (each parameter's update
   is the same arithmetic). The shares tile [0, P); a sharded model's
   moments load as the slices of the full ones; saving one alone is
   refused. */
static void test_zero_shards(void) {
    size_t first, count, next = 0;
    int tiled = 1;
    for (int rank = 0; rank < 3; rank++) { /* 10 = 4 + 3 + 3 */
        tiled &= gpt3_parameter_share(10, rank, 3, &first, &count) == GPT3_OK && first == next &&
                 count == (rank == 0 ? 4u : 3u);
        next = first + count;
    }
    tiled &= next == 10 && gpt3_parameter_share(2, 2, 3, &first, &count) == GPT3_OK && count == 0 &&
             gpt3_parameter_share(10, 3, 3, &first, &count) == GPT3_ERR_ARGUMENT &&
             gpt3_parameter_share(10, 0, 0, &first, &count) == GPT3_ERR_ARGUMENT;
    GPT3Config cfg = small_config(3);
    GPT3 whole, part[3];
    int inputs[16], targets[16];
    random_tokens(inputs, 16, cfg.vocab_size, 60);
    random_tokens(targets, 16, cfg.vocab_size, 61);
    gpt3_init(&whole, &cfg, 9);
    for (int r = 0; r < 3; r++) {
        gpt3_init(&part[r], &cfg, 9);
        tiled &= gpt3_adamw_shard(&part[r], r, 3) == GPT3_OK;
    }
    for (int step = 1; step <= 3; step++) {
        train_steps_from(&whole, inputs, targets, 2, 8, step, step, 1e-2f);
        for (int r = 0; r < 3; r++) train_steps_from(&part[r], inputs, targets, 2, 8, step, step, 1e-2f);
        for (int r = 0; r < 3; r++) /* the all-gather: r's share to the others */
            for (int other = 0; other < 3; other++)
                if (other != r)
                    memcpy(part[other].params + part[r].adam_first, part[r].params + part[r].adam_first,
                           part[r].adam_count * sizeof(float));
    }
    int same = 1, slices = 1;
    for (int r = 0; r < 3; r++) {
        same &= memcmp(part[r].params, whole.params, whole.num_parameters * sizeof(float)) == 0;
        slices &= memcmp(part[r].adam_v, whole.adam_v + part[r].adam_first, part[r].adam_count * sizeof(float)) == 0;
    }
    GPT3TrainState st = {3, 0, 0, 0}, back;
    int refused = gpt3_save_run(&part[1], &st, "test_zero.ckpt") == GPT3_ERR_ARGUMENT &&
                  gpt3_save_state(&part[1], &st, "test_zero.state") == GPT3_ERR_ARGUMENT;
    GPT3 loaded;
    int loads = gpt3_save_run(&whole, &st, "test_zero.ckpt") == GPT3_OK &&
                gpt3_load_run_shard(&loaded, &back, "test_zero.ckpt", 2, 3) == GPT3_OK &&
                loaded.adam_first == part[2].adam_first && loaded.adam_count == part[2].adam_count &&
                memcmp(loaded.adam_m, part[2].adam_m, loaded.adam_count * sizeof(float)) == 0 &&
                memcmp(loaded.adam_v, part[2].adam_v, loaded.adam_count * sizeof(float)) == 0;
    check(tiled && same && slices && refused && loads,
          "ZeRO-1: 3 shares updated apart and exchanged = one full AdamW, bit for bit; shares load from a full state",
          "shares tile: %s, parameters after 3 steps: %s, moments: %s, lone save refused: %s, shard loads: %s",
          tiled ? "yes" : "no", same ? "the same bits" : "differ", slices ? "slices of the full" : "differ",
          refused ? "yes" : "no", loads ? "yes" : "no");
    gpt3_free(&whole);
    gpt3_free(&loaded);
    for (int r = 0; r < 3; r++) gpt3_free(&part[r]);
    remove("test_zero.ckpt");
    remove("test_zero.ckpt.state");
}

static void test_null_arguments(void) {
    GPT3 m;
    GPT3Config cfg = small_config(0);
    GPT3TrainState st;
    GPT3Tokenizer tok;
    GPT3Tokens tokens;
    GPT3DataLoader dl;
    GPT3KVCache kv;
    GPT3Report r;
    int ids[2] = {1, 2}, *out_ids, first;
    size_t n;
    unsigned char *text;
    int codes[] = {
        gpt3_preset(NULL, "tiny"), gpt3_preset(&cfg, NULL), gpt3_check_config(NULL),
        gpt3_init(NULL, &cfg, 1), gpt3_init(&m, NULL, 1), gpt3_load(NULL, "x"), gpt3_load(&m, NULL),
        gpt3_save(NULL, "x"), gpt3_forward(NULL, ids, ids, 1, 2), gpt3_backward(NULL),
        gpt3_adamw_step(NULL, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, 1), gpt3_save_state(NULL, &st, "x"),
        gpt3_load_state(NULL, &st, "x"), gpt3_save_run(NULL, &st, "x"), gpt3_load_run(NULL, &st, "x"),
        gpt3_load_run(&m, NULL, "x"), gpt3_lora_attach(NULL, 1, 1.0f, 1), gpt3_lora_merge(NULL),
        gpt3_head_attach(NULL, GPT3_HEAD_TAGS, 2, 1), gpt3_head_forward(NULL, ids, NULL, NULL, 1, 2),
        gpt3_head_backward(NULL), gpt3_head_save(NULL, "x"), gpt3_head_load(NULL, "x"),
        gpt3_sampler_init(NULL, 4, 1.0f, 0, 1.0f, 1), gpt3_kv_init(NULL, &m), gpt3_kv_init(&kv, NULL),
        gpt3_kv_forward(NULL, &kv, 1), gpt3_tokenizer_bytes(NULL), gpt3_tokenizer_load(NULL, "a", "b"),
        gpt3_tokenizer_load(&tok, NULL, "b"), gpt3_tokenizer_save(NULL, "a", "b"),
        gpt3_tokenizer_train(NULL, "ab", 2, 300), gpt3_encode(NULL, "ab", 2, &out_ids, &n),
        gpt3_decode(NULL, ids, 2, &text, &n), gpt3_report_classes(NULL, ids, ids, 2, 3),
        gpt3_report_entities(&r, ids, ids, 2, NULL, 3), gpt3_tokens_save(NULL, NULL, 0, 4, 1),
        gpt3_tokens_load(NULL, "x"), gpt3_tokens_load(&tokens, NULL), gpt3_loader_init(NULL, &tokens, 1, 1, 0, 1),
        gpt3_loader_init(&dl, NULL, 1, 1, 0, 1), gpt3_batch_share(4, 0, 2, NULL, &first),
        gpt3_batch_share(4, 0, 2, &first, NULL),
    };
    int all = 1;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) all &= codes[i] == GPT3_ERR_ARGUMENT;
    /* the calls that return no code */
    gpt3_zero_grad(NULL); gpt3_free(NULL); gpt3_freeze(NULL, 1); gpt3_set_training(NULL, 1, 0.1f, 1);
    gpt3_set_distillation(NULL, NULL, 1.0f, 0.5f); gpt3_rng_seed(NULL, 1); gpt3_sampler_free(NULL);
    gpt3_kv_reset(NULL); gpt3_kv_free(NULL); gpt3_tokenizer_free(NULL); gpt3_report_free(NULL);
    gpt3_tokens_free(NULL); gpt3_loader_next(NULL); gpt3_loader_free(NULL);
    all &= gpt3_rng_u32(NULL) == 0 && gpt3_sampler_sample(NULL, NULL) == -1 &&
           gpt3_token_bytes(NULL, 0, &n) == NULL && gpt3_clip_grad_norm(NULL, 1.0f) == 0.0f &&
           gpt3_report_format(NULL, NULL, NULL, 0) == 0 && gpt3_num_parameters(NULL) == 0 &&
           gpt3_training_bytes(NULL, 1, 1) == 0;
    check(all, "every public call takes NULL", "%zu calls with a code give GPT3_ERR_ARGUMENT; the others do nothing",
          sizeof(codes) / sizeof(codes[0]));
}

/* test_gpt3 --pytorch DIR NAME [TOL_LOGITS TOL_LOSS TOL_GRADS TOL_NORM TOL_PARAMS]:
   only the PyTorch comparison, of DIR/NAME.ckpt and DIR/NAME.ref (written
   by dev/make_fixtures.py's make_fixture; dev/torch_random.py's models). */
static int pytorch_only(int argc, char **argv) {
    if (argc != 4 && argc != 9) {
        fprintf(stderr, "usage: test_gpt3 --pytorch DIR NAME [TOL_LOGITS TOL_LOSS TOL_GRADS TOL_NORM TOL_PARAMS]\n");
        return 2;
    }
    fixture_dir = argv[2];
    if (argc == 9) {
        tol_logits = atof(argv[4]); tol_loss = atof(argv[5]); tol_grads = atof(argv[6]);
        tol_norm = atof(argv[7]); tol_params = atof(argv[8]);
    }
    test_pytorch_fixture(argv[3]);
    return tests_failed > 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--pytorch") == 0) return pytorch_only(argc, argv);
    if (argc > 1) fixture_dir = argv[1];
    scratch_init();
    test_encoder_grad();
    test_layernorm_grad();
    test_matmul_grad();
    test_matmul_fast();
    test_matmul_fused();
#if defined(__unix__) || defined(__APPLE__)
    test_matmul_in_bounds();
#endif
    test_attention_grad("fd: attention, dense causal", 7, 7, 0.0f);
    test_attention_grad("fd: attention, banded with T > W", 9, 3, 0.0f);
    test_attention_grad("fd: attention, window 1 (self only)", 4, 1, 0.0f);
    test_attention_grad("fd: attention, dropout 0.3 on probabilities", 7, 7, 0.3f);
    test_attention_band_definition();
    test_attention_fast();
    test_exp_tanh();
    test_gelu_grad();
    test_crossentropy_grad();
    test_crossentropy_small_loss();
    test_fd_detects_error();
    test_model_grad();
    test_pytorch_fixture("dense");
    test_pytorch_fixture("banded");
    test_finetune_fixture("lm_lora_distill");
    test_finetune_fixture("classes_prompt_fgm");
    test_finetune_fixture("tags_pgd_distill");
    test_finetune_fixture("binary_lora");
    test_overfit();
    test_determinism();
#ifdef _OPENMP
    test_thread_count();
    test_matmul_threads();
#endif
    test_grad_accumulates();
    test_batch_growth();
    test_presets();
    test_training_bytes();
    test_init();
    test_schedule_and_clip();
    test_sampler();
    test_kv_cache("kv cache = full forward, dense", 0, 0);
    test_kv_cache("kv cache = full forward, banded past W", 3, 0);
    test_kv_cache("kv cache = full forward, LoRA not merged", 3, 2);
    test_huge_window();
    test_checkpoint_roundtrip();
    test_bad_checkpoints();
    test_bad_inputs();
    test_tokenizer_fixtures();
    test_tokenizer_train();
    test_tokenizer_bad_files();
    test_hf_converted();
    test_token_files();
    test_train_state();
#if defined(__unix__) || defined(__APPLE__)
    test_disk_full();
#endif
    test_run_saves();
    test_head_grads();
    test_finetune_grads();
    test_freezing();
    test_lora_merge();
    test_prompt_tuning();
    test_adversarial();
    test_prediction();
    test_score_choices();
    test_padding();
    test_head_files();
    test_tuning_resume();
    test_out_of_memory();
    test_report_classes();
    test_report_entities();
    test_batch_share();
    test_zero_shards();
    test_null_arguments();
    printf("%d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed > 0;
}
