/* dev/ab_compare.sh's program: two header versions, "old" and "new",
   timed in pairs, alternately first, on the same kind of work. This VM's
   speed drifts 10-20% over minutes; a pair shares the drift, so counting
   how often the new one wins tells a change of 2% from the noise, where
   two separate benchmark runs cannot.
     ab step small|teach RUNS
     ab matmul qkv|attproj|fc|fcproj|lmhead forward|dinp|dweight RUNS  */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int old_step_init(int teach);
int new_step_init(int teach);
double old_step(int t);
double new_step(int t);
double old_product(int which, int N, int C, int OC, float *x, float *w, float *y, float *dx, float *dw);
double new_product(int which, int N, int C, int OC, float *x, float *w, float *y, float *dx, float *dw);

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
    static const char *layers[] = {"qkv", "attproj", "fc", "fcproj", "lmhead"};
    static const char *products[] = {"forward", "dinp", "dweight"};
    static const int shape[5][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}, {768, 50257}};
    int is_step = argc == 4 && !strcmp(argv[1], "step"), runs = atoi(argv[argc - 1]), wins = 0;
    int layer = -1, which = -1;
    for (int i = 0; argc == 5 && i < 5; i++) if (!strcmp(argv[2], layers[i])) layer = i;
    for (int i = 0; argc == 5 && i < 3; i++) if (!strcmp(argv[3], products[i])) which = i;
    if (runs < 1 || runs > 1000 || (!is_step && (layer < 0 || which < 0 || strcmp(argv[1], "matmul")))) {
        fprintf(stderr, "usage: ab step small|teach RUNS\n"
                        "       ab matmul qkv|attproj|fc|fcproj|lmhead forward|dinp|dweight RUNS\n");
        return 2;
    }
    double *t_old = (double *)malloc(runs * sizeof(double)), *t_new = (double *)malloc(runs * sizeof(double));
    double flops = 0;
    float *ops[COPIES][10];
    int teach = is_step && !strcmp(argv[2], "teach"), copies = layer == 4 ? 2 : COPIES;
    int N = 256, C = is_step ? 0 : shape[layer][0], OC = is_step ? 0 : shape[layer][1];
    if (is_step && !(old_step_init(teach) && new_step_init(teach))) return 1;
    for (int k = 0; !is_step && k < copies; k++)
        for (int v = 0; v < 10; v++) {
            size_t n[5] = {(size_t)N * C, (size_t)OC * C, (size_t)N * OC, (size_t)N * C, (size_t)OC * C};
            if (!(ops[k][v] = filled(n[v % 5], (unsigned)(k * 10 + v)))) return 1;
        }
    if (!is_step) flops = 2.0 * N * C * OC;
    for (int r = -2; r < runs; r++) { /* two warm-up pairs */
        double a, b;
        if (is_step) {
            if (r & 1) { a = old_step(r + 3); b = new_step(r + 3); }
            else { b = new_step(r + 3); a = old_step(r + 3); }
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
    if (is_step)
        printf("step %s: old %.1f ms, new %.1f ms (medians): new %+.1f%%, faster in %d of %d pairs\n",
               argv[2], 1e3 * mo, 1e3 * mn, 100 * (mo / mn - 1), wins, runs);
    else
        printf("%s %s: old %.1f, new %.1f GFLOP/s (medians): new %+.1f%%, faster in %d of %d pairs\n",
               argv[2], argv[3], flops / mo / 1e9, flops / mn / 1e9, 100 * (mo / mn - 1), wins, runs);
    return 0;
}
