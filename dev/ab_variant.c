/* One side of dev/ab_compare.sh: a header version (HEADER) compiled with
   every function static, exposing its training step and its matmuls under
   the prefix AB(name). The script links two of these into one program. */
#define GPT3_IMPLEMENTATION
#define GPT3_STATIC
#include HEADER
#include <time.h>

static double ab_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static GPT3 ab_model;
static int *ab_tokens, ab_B, ab_T;

/* GPT-3 Small at B 4, T 64, or the teaching size at B 8, T 256 (as ./demo bench). */
int AB(step_init)(int teach) {
    GPT3Config cfg;
    gpt3_preset(&cfg, teach ? "teach" : "small");
    if (teach) cfg.local_window = 0; /* dense, as the benchmark's teach case */
    ab_B = teach ? 8 : 4;
    ab_T = teach ? 256 : 64;
    if (gpt3_init(&ab_model, &cfg, 1) != GPT3_OK) return 0;
    ab_tokens = (int *)malloc(2 * (size_t)ab_B * ab_T * sizeof(int));
    if (!ab_tokens) return 0;
    for (int i = 0; i < 2 * ab_B * ab_T; i++) ab_tokens[i] = (int)(((unsigned)i * 7919u) % (unsigned)cfg.vocab_size);
    return 1;
}

/* One training step (forward, zero_grad, backward, AdamW): seconds. */
double AB(step)(int t) {
    double t0 = ab_now();
    gpt3_forward(&ab_model, ab_tokens, ab_tokens + ab_B * ab_T, ab_B, ab_T);
    gpt3_zero_grad(&ab_model);
    gpt3_backward(&ab_model);
    gpt3_adamw_step(&ab_model, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
    return ab_now() - t0;
}

/* One product of a Linear layer with N rows, C in, OC out: 0 forward,
   1 dinp, 2 dweight. Seconds. */
double AB(product)(int which, int N, int C, int OC, float *x, float *w, float *y, float *dx,
                   float *dw) {
    static GPT3Scratch s;
    if (!s.memory) {
        s.threads = gpt3__max_threads();
        s.floats_per_thread = GPT3__PANEL_FLOATS;
        s.memory = (float *)malloc((size_t)s.threads * s.floats_per_thread * sizeof(float));
    }
    double t0 = ab_now();
    if (which == 0) gpt3__matmul_forward(y, x, w, NULL, 1, N, C, OC, &s);
    if (which == 1) gpt3__matmul_backward(dx, NULL, NULL, y, x, w, 1, N, C, OC, &s);
    if (which == 2) gpt3__matmul_backward(NULL, dw, NULL, y, x, w, 1, N, C, OC, &s);
    return ab_now() - t0;
}

/* Attention forward + backward: the teaching size (B 8, T 256, C 384, NH 6,
   dense), or one sequence of T 2048 at C 768, NH 12 (dense or W 256), as
   ./demo bench. Seconds. */
double AB(attention)(int which) {
    static GPT3Scratch s;
    static float *qkv, *dqkv, *out, *dout, *att, *datt;
    static int last = -1;
    int B = which == 0 ? 8 : 1, T = which == 0 ? 256 : 2048, C = which == 0 ? 384 : 768;
    int NH = which == 0 ? 6 : 12, window = which == 2 ? 256 : T, span = gpt3__attention_span(window, T);
    if (last != which) {
        size_t n = (size_t)B * T * 3 * C;
        free(s.memory); free(qkv); free(dqkv); free(out); free(dout); free(att); free(datt);
        s.threads = gpt3__max_threads();
        s.floats_per_thread = gpt3__attention_scratch_floats(T);
        s.memory = (float *)malloc((size_t)s.threads * s.floats_per_thread * sizeof(float));
        qkv = (float *)malloc(n * sizeof(float));
        dqkv = (float *)calloc(n, sizeof(float));
        out = (float *)malloc(n / 3 * sizeof(float));
        dout = (float *)malloc(n / 3 * sizeof(float));
        att = (float *)malloc((size_t)B * NH * T * span * sizeof(float));
        datt = (float *)malloc((size_t)B * NH * T * span * sizeof(float));
        if (!s.memory || !qkv || !dqkv || !out || !dout || !att || !datt) return -1;
        for (size_t i = 0; i < n; i++) qkv[i] = (float)((i * 2654435761u) % 1000u) / 1000.0f - 0.5f;
        for (size_t i = 0; i < n / 3; i++) dout[i] = (float)((i * 40503u) % 1000u) / 1000.0f - 0.5f;
        last = which;
    }
    double t0 = ab_now();
    gpt3__attention_forward(out, att, qkv, B, T, C, NH, window, NULL, 0, &s);
    gpt3__attention_backward(dqkv, datt, dout, qkv, att, B, T, C, NH, window, NULL, 0, &s);
    return ab_now() - t0;
}

/* GPT-3 Small with the KV cache at batch 1: 64 prompt tokens (not timed),
   then 32 tokens, each the argmax of the last logits. Seconds. */
static GPT3 ab_gen_model;
static GPT3KVCache ab_kv;

int AB(generate_init)(void) {
    GPT3Config cfg;
    gpt3_preset(&cfg, "small");
    return gpt3_init(&ab_gen_model, &cfg, 1) == GPT3_OK && gpt3_kv_init(&ab_kv, &ab_gen_model) == GPT3_OK;
}

double AB(generate)(void) {
    int V = ab_gen_model.config.vocab_size, token = 0;
    gpt3_kv_reset(&ab_kv);
    for (int i = 0; i < 64; i++) gpt3_kv_forward(&ab_gen_model, &ab_kv, (i * 7919) % V);
    double t0 = ab_now();
    for (int i = 0; i < 32; i++) {
        gpt3_kv_forward(&ab_gen_model, &ab_kv, token);
        for (int v = 1; v < V; v++) token = ab_kv.logits[v] > ab_kv.logits[token] ? v : token;
    }
    return ab_now() - t0;
}
