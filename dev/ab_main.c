/* dev/ab_compare.sh's program: two header versions, "old" and "new",
   timed in pairs, alternately first, on the same kind of work. This VM's
   speed drifts 10-20% over minutes; a pair shares the drift, so counting
   how often the new one wins tells a change of 2% from the noise, where
   two separate benchmark runs cannot.
     ab step small|teach RUNS
     ab matmul qkv|attproj|fc|fcproj|lmhead forward|dinp|dweight RUNS  (GPT-3 Small, B T 256)
     ab matmul teach_qkv|teach_attproj|teach_fc|teach_fcproj ...       (teaching size, B T 2048)
     ab attention teach|dense|banded RUNS
     ab generate RUNS  (GPT-3 Small, batch 1, KV cache: 32 tokens)  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int old_step_init(int teach);
int new_step_init(int teach);
double old_step(int t);
double new_step(int t);
double old_product(int which, int N, int C, int OC, float *x, float *w, float *y, float *dx, float *dw);
double new_product(int which, int N, int C, int OC, float *x, float *w, float *y, float *dx, float *dw);
double old_attention(int which);
double new_attention(int which);
int old_generate_init(void);
int new_generate_init(void);
double old_generate(void);
double new_generate(void);

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *filled(size_t n, unsigned seed) {
    float *p = (float *)malloc(n * sizeof(float));
    for (size_t i = 0; p && i < n; i++) p[i] = (float)((i * 2654435761u + seed) % 1000u) / 1000.0f - 0.5f;
    return p;
}

/* Operands cycle through copies that do not fit the caches together
   (about 100 MB), so each product reads them from memory, as in a step. */
#define COPIES 12
static void pair(int old_first, int which, int N, int C, int OC, float **ops, double *t_old,
                 double *t_new) {
    float **o = ops, **n = ops + 5;
    if (old_first) {
        *t_old = old_product(which, N, C, OC, o[0], o[1], o[2], o[3], o[4]);
        *t_new = new_product(which, N, C, OC, n[0], n[1], n[2], n[3], n[4]);
    } else {
        *t_new = new_product(which, N, C, OC, n[0], n[1], n[2], n[3], n[4]);
        *t_old = old_product(which, N, C, OC, o[0], o[1], o[2], o[3], o[4]);
    }
}

int main(int argc, char **argv) {
    static const char *layers[] = {"qkv", "attproj", "fc", "fcproj", "lmhead",
                                   "teach_qkv", "teach_attproj", "teach_fc", "teach_fcproj"};
    static const char *products[] = {"forward", "dinp", "dweight"};
    static const char *attentions[] = {"teach", "dense", "banded"};
    static const int shape[9][3] = {{256, 768, 2304}, {256, 768, 768}, {256, 768, 3072},
                                    {256, 3072, 768}, {256, 768, 50257}, {2048, 384, 1152},
                                    {2048, 384, 384}, {2048, 384, 1536}, {2048, 1536, 384}};
    int is_step = argc == 4 && !strcmp(argv[1], "step");
    int is_attention = argc == 4 && !strcmp(argv[1], "attention");
    int is_generate = argc == 3 && !strcmp(argv[1], "generate");
    int runs = atoi(argv[argc - 1]), wins = 0, layer = -1, which = -1;
    for (int i = 0; argc == 5 && i < 9; i++) if (!strcmp(argv[2], layers[i])) layer = i;
    for (int i = 0; argc == 5 && i < 3; i++) if (!strcmp(argv[3], products[i])) which = i;
    for (int i = 0; is_attention && i < 3; i++) if (!strcmp(argv[2], attentions[i])) which = i;
    int is_matmul = argc == 5 && !strcmp(argv[1], "matmul") && layer >= 0 && which >= 0;
    if (runs < 1 || runs > 1000 || !(is_step || is_matmul || is_generate || (is_attention && which >= 0))) {
        fprintf(stderr, "usage: ab step small|teach RUNS\n"
                        "       ab matmul [teach_]qkv|attproj|fc|fcproj or lmhead forward|dinp|dweight RUNS\n"
                        "       ab attention teach|dense|banded RUNS\n"
                        "       ab generate RUNS\n");
        return 2;
    }
    double *t_old = (double *)malloc(runs * sizeof(double)), *t_new = (double *)malloc(runs * sizeof(double));
    float *ops[COPIES][10];
    int teach = is_step && !strcmp(argv[2], "teach"), copies = layer == 4 ? 2 : COPIES;
    int N = is_matmul ? shape[layer][0] : 0, C = is_matmul ? shape[layer][1] : 0;
    int OC = is_matmul ? shape[layer][2] : 0;
    if (is_step && !(old_step_init(teach) && new_step_init(teach))) return 1;
    if (is_generate && !(old_generate_init() && new_generate_init())) return 1;
    for (int k = 0; is_matmul && k < copies; k++)
        for (int v = 0; v < 10; v++) {
            size_t n[5] = {(size_t)N * C, (size_t)OC * C, (size_t)N * OC, (size_t)N * C, (size_t)OC * C};
            if (!(ops[k][v] = filled(n[v % 5], (unsigned)(k * 10 + v)))) return 1;
        }
    for (int r = -2; r < runs; r++) { /* two warm-up pairs */
        double a, b;
        if (is_step) {
            if (r & 1) { a = old_step(r + 3); b = new_step(r + 3); }
            else { b = new_step(r + 3); a = old_step(r + 3); }
        } else if (is_generate) {
            if (r & 1) { a = old_generate(); b = new_generate(); }
            else { b = new_generate(); a = old_generate(); }
        } else if (is_attention) {
            if (r & 1) { a = old_attention(which); b = new_attention(which); }
            else { b = new_attention(which); a = old_attention(which); }
            if (a < 0 || b < 0) return 1;
        } else {
            pair(r & 1, which, N, C, OC, ops[(r + 2) % copies], &a, &b);
        }
        if (r < 0) continue;
        t_old[r] = a;
        t_new[r] = b;
        wins += b < a;
    }
    qsort(t_old, runs, sizeof(double), by_value);
    qsort(t_new, runs, sizeof(double), by_value);
    double mo = t_old[runs / 2], mn = t_new[runs / 2];
    if (is_matmul) {
        double flops = 2.0 * N * C * OC;
        printf("%s %s: old %.1f, new %.1f GFLOP/s (medians): new %+.1f%%, faster in %d of %d pairs\n",
               argv[2], argv[3], flops / mo / 1e9, flops / mn / 1e9, 100 * (mo / mn - 1), wins, runs);
    } else {
        printf("%s %s: old %.2f ms, new %.2f ms (medians): new %+.1f%%, faster in %d of %d pairs\n",
               argv[1], is_generate ? "small" : argv[2], 1e3 * mo, 1e3 * mn, 100 * (mo / mn - 1), wins, runs);
    }
    return 0;
}
