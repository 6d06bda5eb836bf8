/* gpt3.h - v0.1.0 - GPT-3 in one readable C header - public domain or MIT
                                                   (see the end of the file)

   A decoder-only Transformer language model, exactly as the GPT-3 paper
   ("Language Models are Few-Shot Learners", Brown et al. 2020, Section 2.1)
   describes it: GPT-2's architecture with alternating dense and locally
   banded sparse attention. Forward pass, backward pass (every gradient derived
   in a comment above the code that computes it), AdamW, the GPT-3 learning
   rate schedule, checkpoints. C99, libc and libm only; OpenMP if you have it.

   Do this:
       #define GPT3_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the
   implementation. Every other file includes it plain and sees declarations.

       #define GPT3_IMPLEMENTATION
       #include "gpt3.h"

   Add `#define GPT3_STATIC` as well to make every function static (private
   to that one file). Define GPT3_MALLOC / GPT3_CALLOC / GPT3_FREE before the
   include to use your own allocator.

   A complete program (train on one batch, print the loss):

       GPT3Config cfg; GPT3 m; int in[8] = {1,2,3,4,5,6,7,8}, out[8];
       gpt3_preset(&cfg, "tiny");
       if (gpt3_init(&m, &cfg, 42) != GPT3_OK) return 1;
       for (int i = 0; i < 8; i++) out[i] = in[(i + 1) % 8];
       for (int step = 1; step <= 100; step++) {
           gpt3_forward(&m, in, out, 1, 8);     // B = 1, T = 8
           gpt3_zero_grad(&m);
           gpt3_backward(&m);
           gpt3_adamw_step(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
           printf("step %d loss %f\n", step, m.mean_loss);
       }
       gpt3_free(&m);

   Notation, used in every comment and every shape:
       B  batch size             T  sequence length (time)
       C  channels (d_model)     V  vocabulary size
       L  layers (n_layers)      NH attention heads     hs head size = C / NH
       W  local attention window (banded layers only)
   A tensor's shape is written beside it, e.g. `float *qkvw; // (L, 3C, C)`.
   The losses follow Section 4 of the fine-tuning article: the empirical risk
   L(theta) = (1/N) sum_i l(M_theta(x_i), y_i), gradients by the chain rule,
   and the update theta <- theta - eta grad L - eta lambda theta.

   Errors: every call that can fail returns an int, GPT3_OK (0) on success;
   gpt3_strerror(code) says what went wrong and what to do. The library never
   prints, exits or aborts; the program around it decides.

   C++: the declarations are wrapped in extern "C"; the implementation
   compiles as C++ too (g++ before 13 warns about the `#pragma omp` lines
   when built without -fopenmp: GCC bug 53431; add -Wno-unknown-pragmas).

   Threads: with OpenMP (-fopenmp) the matmuls, attention, LayerNorm, GELU and
   the loss run in parallel; OMP_NUM_THREADS sets the count. Every output
   element is computed by one thread in a fixed order, so results are
   bit-identical for any thread count. Without OpenMP it runs on one thread.

   Revision history:
       0.1.0  forward, backward, AdamW, schedule, clipping, checkpoints v1,
              presets of Table 2.1
*/
#ifndef GPT3_H
#define GPT3_H

#include <stddef.h>
#include <stdint.h>

#ifdef GPT3_STATIC
#define GPT3DEF static
#else
#define GPT3DEF extern
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

enum {
    GPT3_OK = 0,
    GPT3_ERR_ARGUMENT,       /* a NULL pointer or a value out of range       */
    GPT3_ERR_CONFIG,         /* sizes < 1, channels % num_heads != 0, ...    */
    GPT3_ERR_NOMEM,          /* an allocation failed                        */
    GPT3_ERR_OPEN,           /* a file could not be opened                  */
    GPT3_ERR_READ,           /* reading a file failed                       */
    GPT3_ERR_WRITE,          /* writing a file failed (disk full?)          */
    GPT3_ERR_NOT_CHECKPOINT, /* the file does not start with "GPT3"         */
    GPT3_ERR_VERSION,        /* a checkpoint version this reader does not know */
    GPT3_ERR_TRUNCATED,      /* the file ends before the parameters do      */
    GPT3_ERR_TOKEN,          /* an input token id outside [0, V)            */
    GPT3_ERR_TARGET,         /* a target id >= V                            */
    GPT3_ERR_SEQ_LEN,        /* T > max_seq_len                             */
    GPT3_ERR_BATCH,          /* B < 1 or T < 1                              */
    GPT3_ERR_NO_TARGETS,     /* backward without a forward with targets     */
    GPT3_ERR_PRESET,         /* no preset of that name                      */
    GPT3_ERR_DATA,           /* not a token file, or a corrupt one          */
    GPT3_ERR_DATA_SHORT,     /* fewer than T + 1 tokens                     */
    GPT3_ERR_MISMATCH,       /* a file that belongs to another model        */
    GPT3_NUM_ERRORS
};

/* ------------------------------------------------------------------------ */
/* Config and presets                                                       */

typedef struct {
    int max_seq_len;   /* n_ctx; 2048 for every GPT-3 size                 */
    int vocab_size;    /* 50257 for the GPT-2/GPT-3 BPE                      */
    int num_layers;    /* n_layers                                           */
    int num_heads;     /* n_heads                                            */
    int channels;      /* d_model; head size = channels / num_heads          */
    int local_window;  /* 0: every layer dense. W > 0: layers 1, 3, 5, ...   */
                       /* (0-based, odd) are locally banded: position t      */
                       /* attends to s with t - W < s <= t. Even layers are  */
                       /* dense causal (s <= t).                             */
} GPT3Config;

/* Fill *cfg with a named preset: the eight models of the GPT-3 paper's
   Table 2.1 ("small" 125M, "medium" 350M, "large" 760M, "xl" 1.3B, "2.7b",
   "6.7b", "13b", "175b"; "125m", "350m", "760m", "1.3b" also work) or a
   teaching size ("tiny", "mini", "teach"). */
GPT3DEF int gpt3_preset(GPT3Config *cfg, const char *name);
/* The i-th preset name (i = 0, 1, ...), NULL past the last. */
GPT3DEF const char *gpt3_preset_name(int i);
/* GPT3_OK if the config describes a model this header can build. */
GPT3DEF int gpt3_check_config(const GPT3Config *cfg);
/* Number of parameters (floats) of a config; 0 if the config is invalid. */
GPT3DEF size_t gpt3_num_parameters(const GPT3Config *cfg);
/* Bytes that training at (B, T) allocates: parameters, gradients, AdamW's
   two moments, activations and backward scratch. Allocates nothing;
   0 if the config or B, T are invalid. */
GPT3DEF size_t gpt3_training_bytes(const GPT3Config *cfg, int B, int T);

/* ------------------------------------------------------------------------ */
/* Parameters: one flat float array, viewed as 16 tensors                   */

#define GPT3_NUM_TENSORS 16

typedef struct {
    float *wte;      /* (V, C)      token embedding, also the output head  */
    float *wpe;      /* (maxT, C)   position embedding                     */
    float *ln1w;     /* (L, C)      LayerNorm before attention: scale      */
    float *ln1b;     /* (L, C)                                 and shift   */
    float *qkvw;     /* (L, 3C, C)  query, key, value projection           */
    float *qkvb;     /* (L, 3C)                                            */
    float *attprojw; /* (L, C, C)   attention output projection            */
    float *attprojb; /* (L, C)                                             */
    float *ln2w;     /* (L, C)      LayerNorm before the MLP               */
    float *ln2b;     /* (L, C)                                             */
    float *fcw;      /* (L, 4C, C)  MLP up-projection                      */
    float *fcb;      /* (L, 4C)                                            */
    float *fcprojw;  /* (L, C, 4C)  MLP down-projection                    */
    float *fcprojb;  /* (L, C)                                             */
    float *lnfw;     /* (C)         final LayerNorm                        */
    float *lnfb;     /* (C)                                                */
} GPT3Tensors;

/* Name of tensor i of the flat layout ("wte", "wpe", ...), NULL if none. */
GPT3DEF const char *gpt3_tensor_name(int i);

/* What the forward pass keeps for the backward pass. */
typedef struct {
    float *encoded;   /* (B, T, C)       token + position embedding        */
    float *ln1;       /* (L, B, T, C)    LayerNorm 1 output                */
    float *ln1_mean;  /* (L, B, T)                                         */
    float *ln1_rstd;  /* (L, B, T)       1 / sqrt(variance + eps)          */
    float *qkv;       /* (L, B, T, 3C)                                     */
    float *att;       /* per layer (B, NH, T, span): softmax probabilities;
                         span = T for a dense layer, min(W, T) for a banded */
    float *atty;      /* (L, B, T, C)    attention output, heads joined    */
    float *attproj;   /* (L, B, T, C)                                      */
    float *residual2; /* (L, B, T, C)    after the attention residual      */
    float *ln2;       /* (L, B, T, C)                                      */
    float *ln2_mean;  /* (L, B, T)                                         */
    float *ln2_rstd;  /* (L, B, T)                                         */
    float *fch;       /* (L, B, T, 4C)   MLP hidden, before GELU           */
    float *fch_gelu;  /* (L, B, T, 4C)   after GELU                        */
    float *fcproj;    /* (L, B, T, C)                                      */
    float *residual3; /* (L, B, T, C)    after the MLP residual: block out */
    float *lnf;       /* (B, T, C)       final LayerNorm output            */
    float *lnf_mean;  /* (B, T)                                            */
    float *lnf_rstd;  /* (B, T)                                            */
    float *logits;    /* (B, T, V)                                         */
    float *lse;       /* (B, T)          log sum_v exp(logits): softmax    */
    float *losses;    /* (B, T)          per-position cross-entropy        */
    /* backward scratch, one layer's worth, reused from layer to layer     */
    float *dresidual; /* (B, T, C)       dL/d(residual stream)             */
    float *dln;       /* (B, T, C)       dL/d(LayerNorm output)            */
    float *datty;     /* (B, T, C)                                         */
    float *dqkv;      /* (B, T, 3C)                                        */
    float *datt;      /* (B, NH, T, span) largest span of any layer        */
    float *dfch;      /* (B, T, 4C)                                        */
    float *dlogits;   /* (B, T, V)                                         */
} GPT3Activations;

typedef struct {
    GPT3Config config;
    size_t num_parameters;                   /* floats in params          */
    size_t tensor_sizes[GPT3_NUM_TENSORS];   /* floats in each tensor     */
    float *params;       /* (num_parameters) the flat layout of INTERFACE.md */
    GPT3Tensors w;       /* views into params                               */
    float *grads;        /* (num_parameters) dL/dparams, same layout;
                            zero after init and load                        */
    GPT3Tensors dw;      /* views into grads                                */
    float *adam_m;       /* (num_parameters) AdamW first moment; NULL until */
    float *adam_v;       /* (num_parameters) the first step: second moment  */
    GPT3Activations acts;
    float *acts_memory;  /* one allocation behind acts                      */
    size_t acts_capacity;/* floats allocated in acts_memory                 */
    int *inputs;         /* (B, T) copy of the last forward's tokens        */
    int *targets;        /* (B, T) and targets                              */
    size_t tokens_capacity; /* ints allocated in each of inputs, targets    */
    int B, T;            /* of the last forward                             */
    int has_targets;     /* the last forward had targets: backward may run  */
    float *logits;       /* (B, T, V) after every forward                   */
    float mean_loss;     /* mean cross-entropy of the last forward; -1 when
                            it had no targets                               */
} GPT3;

/* ------------------------------------------------------------------------ */
/* Core calls (the interface other programs rely on)                        */

/* Allocate the parameters and initialise them as GPT-2/GPT-3 do: weights
   N(0, 0.02), residual output projections N(0, 0.02/sqrt(2L)), LayerNorm
   scale 1 and shift 0, biases 0. The same seed gives the same parameters on
   every platform and thread count. *m is overwritten (call gpt3_free first
   to reuse a model); on failure it is left empty, safe to gpt3_free. */
GPT3DEF int  gpt3_init(GPT3 *m, const GPT3Config *cfg, uint64_t seed);
/* Read a checkpoint (see gpt3_save). Same rules for *m as gpt3_init. */
GPT3DEF int  gpt3_load(GPT3 *m, const char *checkpoint_path);
/* Write a checkpoint: 256 little-endian int32 (magic "GPT3", version 1,
   the six config values, zeros), then the parameters as float32. Written to
   a temporary file first and renamed, so a failed save leaves the previous
   file as it was. */
GPT3DEF int  gpt3_save(const GPT3 *m, const char *checkpoint_path);
/* inputs, targets: B*T ints, row-major (b, t). targets may be NULL
   (inference only); a target < 0 is ignored. After the call m->logits holds
   (B, T, V) and, with targets, m->mean_loss the mean cross-entropy over the
   positions not ignored (0 if every position is ignored). */
GPT3DEF int  gpt3_forward(GPT3 *m, const int *inputs, const int *targets,
                          int B, int T);
GPT3DEF void gpt3_zero_grad(GPT3 *m);
/* After a forward with targets: ADDS dL/dparams to m->grads (so call
   gpt3_zero_grad first, or not, to accumulate over micro-batches). */
GPT3DEF int  gpt3_backward(GPT3 *m);
/* torch.optim.AdamW's update, weight decay on the 2-D tensors only.
   t = 1, 2, 3, ... is the step number for the bias corrections. */
GPT3DEF int  gpt3_adamw_step(GPT3 *m, float lr, float beta1, float beta2,
                             float eps, float weight_decay, int t);
GPT3DEF void gpt3_free(GPT3 *m);
GPT3DEF const char *gpt3_strerror(int code);

/* ------------------------------------------------------------------------ */
/* Training helpers                                                         */

/* What resuming a run needs besides the parameters; AdamW's moments come
   from and go to the model. Saved atomically, in a file of its own. */
typedef struct {
    int step;                 /* optimizer steps taken                      */
    uint64_t data_position;   /* the data loader's position                 */
    uint64_t data_rng;        /* and its RNG state                          */
} GPT3TrainState;
GPT3DEF int gpt3_save_state(const GPT3 *m, const GPT3TrainState *st, const char *path);
/* Replaces m's AdamW moments; GPT3_ERR_MISMATCH if the file was written
   for a model with another number of parameters. */
GPT3DEF int gpt3_load_state(GPT3 *m, GPT3TrainState *st, const char *path);

/* Global L2 norm of m->grads (computed in double), returned as it was
   before clipping. If max_norm > 0 and the norm exceeds it, every gradient
   is scaled by max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_. */
GPT3DEF float gpt3_clip_grad_norm(GPT3 *m, float max_norm);
/* GPT-3's learning rate at step (0-based): linear warmup from max_lr/warmup
   to max_lr over warmup_steps, cosine decay to 0.1 max_lr at decay_steps,
   then 0.1 max_lr. */
GPT3DEF float gpt3_lr_schedule(int step, float max_lr, int warmup_steps,
                               int decay_steps);

/* ------------------------------------------------------------------------ */
/* Generation: random numbers, sampling, the KV cache                       */

typedef struct { uint64_t state; } GPT3Rng;    /* splitmix64 */
GPT3DEF void     gpt3_rng_seed(GPT3Rng *rng, uint64_t seed);
GPT3DEF uint32_t gpt3_rng_u32(GPT3Rng *rng);
GPT3DEF float    gpt3_rng_float(GPT3Rng *rng);  /* uniform in [0, 1)    */

typedef struct { float p; int token; } GPT3Candidate;
typedef struct {
    float temperature;        /* <= 0: always the most likely token        */
    int top_k;                /* keep the k most likely tokens; 0: all     */
    float top_p;              /* keep the smallest set with mass >= p; 1: all */
    int vocab_size;
    GPT3Rng rng;
    GPT3Candidate *candidates; /* (V) scratch                              */
} GPT3Sampler;
GPT3DEF int  gpt3_sampler_init(GPT3Sampler *s, int vocab_size, float temperature,
                               int top_k, float top_p, uint64_t seed);
/* Draw a token from logits (V); -1 if the sampler or logits are NULL. */
GPT3DEF int  gpt3_sampler_sample(GPT3Sampler *s, const float *logits);
GPT3DEF void gpt3_sampler_free(GPT3Sampler *s);

/* Keys and values of every position seen so far, for one sequence (B = 1). */
typedef struct {
    int pos;        /* positions in the cache: the next token's position   */
    float *keys;    /* per layer (rows_l, C): rows_l = max_seq_len for a dense
                       layer, W for a banded one (a ring: position s in row s % W) */
    float *values;  /* same layout                                         */
    float *logits;  /* (V) logits after the last gpt3_kv_forward           */
    float *x, *xn, *qkv, *atty, *proj, *fch, *fch_gelu, *att, *stats; /* scratch */
    float *memory;  /* one allocation behind all of the above              */
} GPT3KVCache;
GPT3DEF int  gpt3_kv_init(GPT3KVCache *kv, const GPT3 *m);
/* Run one token at position kv->pos; kv->logits then holds its logits.
   GPT3_ERR_SEQ_LEN once max_seq_len positions are in the cache. */
GPT3DEF int  gpt3_kv_forward(GPT3 *m, GPT3KVCache *kv, int token);
GPT3DEF void gpt3_kv_reset(GPT3KVCache *kv);    /* forget every position   */
GPT3DEF void gpt3_kv_free(GPT3KVCache *kv);

/* ------------------------------------------------------------------------ */
/* Data                                                                     */

/* Tokens of a token file (see gpt3_tokens_save). */
typedef struct {
    uint16_t *tokens;        /* (count)                                     */
    size_t count;
    int vocab_size;
    uint32_t tokenizer_id;   /* fingerprint of the tokenizer that made them */
} GPT3Tokens;
/* Write tokens atomically: 64 little-endian uint32 (magic "GTKN", version 1,
   vocab_size, tokenizer_id, count as two words, zeros), then uint16 tokens. */
GPT3DEF int  gpt3_tokens_save(const char *path, const uint16_t *tokens, size_t count,
                              int vocab_size, uint32_t tokenizer_id);
/* GPT3_ERR_DATA if the file is not a token file, is cut short, or holds a
   token >= its vocab_size. */
GPT3DEF int  gpt3_tokens_load(GPT3Tokens *t, const char *path);
GPT3DEF void gpt3_tokens_free(GPT3Tokens *t);

/* (B, T) batches of inputs and next-token targets from a token array. */
typedef struct {
    const uint16_t *tokens;  /* not owned                                   */
    size_t count;
    int B, T, shuffle;       /* shuffle: random windows; else in order      */
    uint64_t position;       /* sequential: start of the next window        */
    GPT3Rng rng;             /* shuffled: where windows start               */
    int *inputs, *targets;   /* (B, T) the batch made by gpt3_loader_next   */
} GPT3DataLoader;
/* GPT3_ERR_DATA_SHORT if data has fewer than T + 1 tokens. */
GPT3DEF int  gpt3_loader_init(GPT3DataLoader *dl, const GPT3Tokens *data, int B, int T,
                              int shuffle, uint64_t seed);
GPT3DEF void gpt3_loader_next(GPT3DataLoader *dl);
GPT3DEF void gpt3_loader_free(GPT3DataLoader *dl);

#ifdef __cplusplus
}
#endif
#endif /* GPT3_H */

/* ======================================================================== */
/*                             IMPLEMENTATION                               */
/* ======================================================================== */
#ifdef GPT3_IMPLEMENTATION

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
/* fsync, so a saved checkpoint survives a power cut, where POSIX is on */
#if (defined(__unix__) || defined(__APPLE__)) && \
    (!defined(__STRICT_ANSI__) || defined(_POSIX_C_SOURCE))
#define GPT3__HAVE_FSYNC 1
#include <unistd.h>
#endif

#ifndef GPT3_MALLOC
#define GPT3_MALLOC(size) malloc(size)
#define GPT3_CALLOC(count, size) calloc(count, size)
#define GPT3_FREE(ptr) free(ptr)
#endif

/* Without OpenMP the `#pragma omp` lines are simply ignored; say so to the
   compiler once instead of guarding every loop. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#elif defined(_MSC_VER)
#pragma warning(push)
#pragma warning(disable : 4068)
#endif

#define GPT3__PI 3.14159265358979323846

/* ======================================================================== */
/* Config and presets                                                       */
/* ======================================================================== */

typedef struct {
    const char *name;
    int num_layers, channels, num_heads, max_seq_len, vocab_size, local_window;
} GPT3__Preset;

/* Table 2.1 of the GPT-3 paper: n_layers, d_model, n_heads; n_ctx 2048 and
   the 50257-token BPE for all. The paper gives no window for its "locally
   banded sparse" layers; we use 256, as GPT-Neo (the open replication of
   GPT-3) does for its local layers.
   Two rows of the table do not divide, and we keep the parameter count:
   - XL 1.3B: 24 heads x d_head 128 = 3072 != d_model 2048. We keep d_model
     2048 (the parameter count depends only on L and d_model) and d_head 128,
     so 16 heads.
   - 13B: d_model 5140 = 40 heads x 128.5. We use 5120 = 40 x 128, keeping
     n_heads and d_head; the count is 12.85B, still the paper's "13B". */
static const GPT3__Preset gpt3__presets[] = {
    /* name       L     C      NH   maxT   V      W   */
    {"small",     12,   768,   12,  2048,  50257, 256},   /* 125M */
    {"medium",    24,   1024,  16,  2048,  50257, 256},   /* 350M */
    {"large",     24,   1536,  16,  2048,  50257, 256},   /* 760M */
    {"xl",        24,   2048,  16,  2048,  50257, 256},   /* 1.3B, see above */
    {"2.7b",      32,   2560,  32,  2048,  50257, 256},
    {"6.7b",      32,   4096,  32,  2048,  50257, 256},
    {"13b",       40,   5120,  40,  2048,  50257, 256},   /* see above */
    {"175b",      96,   12288, 96,  2048,  50257, 256},   /* "GPT-3" */
    {"125m",      12,   768,   12,  2048,  50257, 256},
    {"350m",      24,   1024,  16,  2048,  50257, 256},
    {"760m",      24,   1536,  16,  2048,  50257, 256},
    {"1.3b",      24,   2048,  16,  2048,  50257, 256},
    /* teaching sizes: bytes as tokens (V 256), seconds to minutes on a laptop */
    {"tiny",      2,    64,    4,   64,    256,   16},
    {"mini",      4,    128,   4,   128,   256,   32},
    {"teach",     6,    384,   6,   256,   256,   128},
};
#define GPT3__NUM_PRESETS ((int)(sizeof(gpt3__presets) / sizeof(gpt3__presets[0])))

GPT3DEF int gpt3_preset(GPT3Config *cfg, const char *name) {
    if (!cfg || !name) return GPT3_ERR_ARGUMENT;
    for (int i = 0; i < GPT3__NUM_PRESETS; i++) {
        const GPT3__Preset *p = &gpt3__presets[i];
        if (strcmp(p->name, name) != 0) continue;
        cfg->max_seq_len = p->max_seq_len;
        cfg->vocab_size = p->vocab_size;
        cfg->num_layers = p->num_layers;
        cfg->num_heads = p->num_heads;
        cfg->channels = p->channels;
        cfg->local_window = p->local_window;
        return GPT3_OK;
    }
    return GPT3_ERR_PRESET;
}

GPT3DEF const char *gpt3_preset_name(int i) {
    return (i >= 0 && i < GPT3__NUM_PRESETS) ? gpt3__presets[i].name : NULL;
}

GPT3DEF int gpt3_check_config(const GPT3Config *cfg) {
    if (!cfg) return GPT3_ERR_ARGUMENT;
    if (cfg->max_seq_len < 1 || cfg->vocab_size < 1 || cfg->num_layers < 1 ||
        cfg->num_heads < 1 || cfg->channels < 1 || cfg->local_window < 0 ||
        cfg->channels % cfg->num_heads != 0)
        return GPT3_ERR_CONFIG;
    /* 4C and 3C*C must fit an int (loops index rows of a matrix with int) */
    if (cfg->channels > 8192 * 4 || cfg->vocab_size > (1 << 28) ||
        cfg->max_seq_len > (1 << 24))
        return GPT3_ERR_CONFIG;
    return GPT3_OK;
}

/* ======================================================================== */
/* Parameters                                                               */
/* ======================================================================== */

static const char *gpt3__tensor_names[GPT3_NUM_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

GPT3DEF const char *gpt3_tensor_name(int i) {
    return (i >= 0 && i < GPT3_NUM_TENSORS) ? gpt3__tensor_names[i] : NULL;
}

/* Sizes of the 16 tensors in the order of the flat layout. */
static void gpt3__tensor_sizes(const GPT3Config *cfg, size_t sizes[GPT3_NUM_TENSORS]) {
    size_t V = (size_t)cfg->vocab_size, maxT = (size_t)cfg->max_seq_len;
    size_t L = (size_t)cfg->num_layers, C = (size_t)cfg->channels;
    sizes[0] = V * C;          /* wte      */
    sizes[1] = maxT * C;       /* wpe      */
    sizes[2] = L * C;          /* ln1w     */
    sizes[3] = L * C;          /* ln1b     */
    sizes[4] = L * 3 * C * C;  /* qkvw     */
    sizes[5] = L * 3 * C;      /* qkvb     */
    sizes[6] = L * C * C;      /* attprojw */
    sizes[7] = L * C;          /* attprojb */
    sizes[8] = L * C;          /* ln2w     */
    sizes[9] = L * C;          /* ln2b     */
    sizes[10] = L * 4 * C * C; /* fcw      */
    sizes[11] = L * 4 * C;     /* fcb      */
    sizes[12] = L * C * 4 * C; /* fcprojw  */
    sizes[13] = L * C;         /* fcprojb  */
    sizes[14] = C;             /* lnfw     */
    sizes[15] = C;             /* lnfb     */
}

/* The 2-D weight matrices get weight decay; biases and LayerNorm do not. */
static int gpt3__tensor_is_decayed(int i) {
    return i == 0 || i == 1 || i == 4 || i == 6 || i == 10 || i == 12;
}

GPT3DEF size_t gpt3_num_parameters(const GPT3Config *cfg) {
    size_t sizes[GPT3_NUM_TENSORS], total = 0;
    if (gpt3_check_config(cfg) != GPT3_OK) return 0;
    gpt3__tensor_sizes(cfg, sizes);
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) total += sizes[i];
    return total;
}

/* Point the 16 tensor views at their slices of one flat array. */
static void gpt3__point_tensors(GPT3Tensors *t, float *flat,
                                const size_t sizes[GPT3_NUM_TENSORS]) {
    float **views[GPT3_NUM_TENSORS] = {
        &t->wte, &t->wpe, &t->ln1w, &t->ln1b, &t->qkvw, &t->qkvb,
        &t->attprojw, &t->attprojb, &t->ln2w, &t->ln2b, &t->fcw, &t->fcb,
        &t->fcprojw, &t->fcprojb, &t->lnfw, &t->lnfb};
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        *views[i] = flat;
        flat += sizes[i];
    }
}

/* ======================================================================== */
/* Layers                                                                   */
/*                                                                          */
/* Each layer computes out = f(inp; theta). Its backward receives           */
/* dout = dL/dout and, by the chain rule,                                   */
/*     dL/dinp   = (d out / d inp)^T   dout                                 */
/*     dL/dtheta = (d out / d theta)^T dout,                                */
/* which it ADDS (+=) to dinp and dtheta: a tensor used twice (wte, the     */
/* residual stream) collects both contributions.                            */
/* ======================================================================== */

/* ---- Embedding ----------------------------------------------------------
   out[b,t,:] = wte[tok[b,t],:] + wpe[t,:]                                  */
static void encoder_forward(float *out, const int *tokens, const float *wte,
                            const float *wpe, int B, int T, int C) {
    /* out (B,T,C), tokens (B,T), wte (V,C), wpe (maxT,C) */
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        float *o = out + (size_t)bt * C;
        const float *te = wte + (size_t)tokens[bt] * C;
        const float *pe = wpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
    }
}

/* Each output row is a copy of one wte row plus one wpe row, so
       dL/dwte[v,:] = sum over (b,t) with tok[b,t] = v of dout[b,t,:]
       dL/dwpe[t,:] = sum over b of dout[b,t,:].
   Serial: two positions holding the same token write the same row.       */
static void encoder_backward(float *dwte, float *dwpe, const float *dout,
                             const int *tokens, int B, int T, int C) {
    for (int bt = 0; bt < B * T; bt++) {
        const float *d = dout + (size_t)bt * C;
        float *dte = dwte + (size_t)tokens[bt] * C;
        float *dpe = dwpe + (size_t)(bt % T) * C;
        for (int i = 0; i < C; i++) {
            dte[i] += d[i];
            dpe[i] += d[i];
        }
    }
}

/* ---- LayerNorm ----------------------------------------------------------
   For one row x of C values:
       mu = (1/C) sum_i x_i,   sigma^2 = (1/C) sum_i (x_i - mu)^2,
       r = 1 / sqrt(sigma^2 + 1e-5),   xhat_i = (x_i - mu) r,
       y_i = w_i xhat_i + b_i.
   mean and rstd (= r) are kept for the backward pass.                     */
static void layernorm_forward(float *out, float *mean, float *rstd,
                              const float *inp, const float *weight,
                              const float *bias, int B, int T, int C) {
    /* out, inp (B,T,C); mean, rstd (B,T); weight, bias (C) */
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *x = inp + (size_t)bt * C;
        float *y = out + (size_t)bt * C;
        float mu = 0.0f, var = 0.0f;
        for (int i = 0; i < C; i++) mu += x[i];
        mu /= C;
        for (int i = 0; i < C; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= C;
        float r = 1.0f / sqrtf(var + 1e-5f);
        for (int i = 0; i < C; i++) y[i] = (x[i] - mu) * r * weight[i] + bias[i];
        mean[bt] = mu;
        rstd[bt] = r;
    }
}

/* With dy = dL/dy for one row:
       dL/db_i = dy_i,   dL/dw_i = dy_i xhat_i          (summed over rows)
   and with g_i = dy_i w_i = dL/dxhat_i, since xhat depends on every x_j
   through mu and r (d mu/dx_j = 1/C, d r/dx_j = -r^3 (x_j - mu)/C):
       dL/dx_j = r ( g_j - (1/C) sum_i g_i - xhat_j (1/C) sum_i g_i xhat_i ).
   dinp rows are independent (parallel); dweight and dbias sum over rows,
   done serially so each element is summed in one fixed order.            */
static void layernorm_backward(float *dinp, float *dweight, float *dbias,
                               const float *dout, const float *inp,
                               const float *weight, const float *mean,
                               const float *rstd, int B, int T, int C) {
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *dy = dout + (size_t)bt * C, *x = inp + (size_t)bt * C;
        float *dx = dinp + (size_t)bt * C;
        float mu = mean[bt], r = rstd[bt];
        float g_mean = 0.0f, gxhat_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float g = dy[i] * weight[i];
            g_mean += g;
            gxhat_mean += g * (x[i] - mu) * r;
        }
        g_mean /= C;
        gxhat_mean /= C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - mu) * r;
            dx[i] += r * (dy[i] * weight[i] - g_mean - xhat * gxhat_mean);
        }
    }
    if (!dweight) return;
    for (int bt = 0; bt < B * T; bt++) {
        const float *dy = dout + (size_t)bt * C, *x = inp + (size_t)bt * C;
        for (int i = 0; i < C; i++) {
            dweight[i] += dy[i] * (x[i] - mean[bt]) * rstd[bt];
            dbias[i] += dy[i];
        }
    }
}

/* ---- Matmul (torch.nn.Linear) --------------------------------------------
   out[n,o] = sum_i inp[n,i] weight[o,i] + bias[o],  i.e.  out = inp W^T + b,
   for the N = B*T rows n. The simple reference version: blocked so that a
   block of weight rows stays in cache while a block of input rows passes
   over it, and each output is the dot product below. A faster kernel can
   replace these two functions; the tests compare against this one.       */
#define GPT3__ROW_BLOCK 32
#define GPT3__COL_BLOCK 64

/* Dot product with 8 independent partial sums, so the compiler can keep
   them in one vector register; summed in a fixed order (deterministic). */
static float gpt3__dot(const float *a, const float *b, int n) {
    float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) lane[k] += a[i + k] * b[i + k];
    float sum = 0.0f;
    for (; i < n; i++) sum += a[i] * b[i];
    for (int k = 0; k < 8; k++) sum += lane[k];
    return sum;
}

static void matmul_forward(float *out, const float *inp, const float *weight,
                           const float *bias, int B, int T, int C, int OC) {
    /* out (B,T,OC), inp (B,T,C), weight (OC,C), bias (OC) or NULL */
    int N = B * T;
    int n_blocks = (N + GPT3__ROW_BLOCK - 1) / GPT3__ROW_BLOCK;
    int o_blocks = (OC + GPT3__COL_BLOCK - 1) / GPT3__COL_BLOCK;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int nb = 0; nb < n_blocks; nb++) {
        for (int ob = 0; ob < o_blocks; ob++) {
            int n_end = nb * GPT3__ROW_BLOCK + GPT3__ROW_BLOCK;
            int o_end = ob * GPT3__COL_BLOCK + GPT3__COL_BLOCK;
            if (n_end > N) n_end = N;
            if (o_end > OC) o_end = OC;
            for (int n = nb * GPT3__ROW_BLOCK; n < n_end; n++) {
                const float *x = inp + (size_t)n * C;
                float *y = out + (size_t)n * OC;
                for (int o = ob * GPT3__COL_BLOCK; o < o_end; o++)
                    y[o] = (bias ? bias[o] : 0.0f) + gpt3__dot(x, weight + (size_t)o * C, C);
            }
        }
    }
}

/* From out[n,o] = sum_i inp[n,i] W[o,i] + b[o]:
       dL/dinp[n,i] = sum_o dout[n,o] W[o,i]      dinp = dout W
       dL/dW[o,i]   = sum_n dout[n,o] inp[n,i]    dW   = dout^T inp
       dL/db[o]     = sum_n dout[n,o].
   Each is a sum of scaled rows (axpy), which vectorises. dinp is split
   over row blocks and dW, db over output blocks, so no two threads write
   the same element. Any of dinp, dweight, dbias may be NULL.              */
static void matmul_backward(float *dinp, float *dweight, float *dbias,
                            const float *dout, const float *inp,
                            const float *weight, int B, int T, int C, int OC) {
    int N = B * T;
    int n_blocks = (N + GPT3__ROW_BLOCK - 1) / GPT3__ROW_BLOCK;
    int o_blocks = (OC + GPT3__COL_BLOCK - 1) / GPT3__COL_BLOCK;
    if (dinp) {
        #pragma omp parallel for schedule(static)
        for (int nb = 0; nb < n_blocks; nb++) {
            int n_end = nb * GPT3__ROW_BLOCK + GPT3__ROW_BLOCK;
            if (n_end > N) n_end = N;
            for (int o0 = 0; o0 < OC; o0 += GPT3__COL_BLOCK) {
                int o_end = o0 + GPT3__COL_BLOCK < OC ? o0 + GPT3__COL_BLOCK : OC;
                for (int n = nb * GPT3__ROW_BLOCK; n < n_end; n++) {
                    float *dx = dinp + (size_t)n * C;
                    for (int o = o0; o < o_end; o++) {
                        float d = dout[(size_t)n * OC + o];
                        const float *w = weight + (size_t)o * C;
                        for (int i = 0; i < C; i++) dx[i] += d * w[i];
                    }
                }
            }
        }
    }
    if (!dweight && !dbias) return;
    #pragma omp parallel for schedule(static)
    for (int ob = 0; ob < o_blocks; ob++) {
        int o_end = ob * GPT3__COL_BLOCK + GPT3__COL_BLOCK;
        if (o_end > OC) o_end = OC;
        for (int n0 = 0; n0 < N; n0 += GPT3__ROW_BLOCK) {
            int n_end = n0 + GPT3__ROW_BLOCK < N ? n0 + GPT3__ROW_BLOCK : N;
            for (int o = ob * GPT3__COL_BLOCK; o < o_end; o++) {
                for (int n = n0; n < n_end; n++) {
                    float d = dout[(size_t)n * OC + o];
                    const float *x = inp + (size_t)n * C;
                    if (dbias) dbias[o] += d;
                    if (!dweight) continue;
                    float *dw = dweight + (size_t)o * C;
                    for (int i = 0; i < C; i++) dw[i] += d * x[i];
                }
            }
        }
    }
}

/* ---- Causal self-attention, dense or locally banded ----------------------
   qkv holds, for each position, q (C values), k (C), v (C); head h owns
   channels h*hs .. (h+1)*hs-1 of each. For one head and position t, the
   positions it may see are S(t) = { s : t - window < s <= t, s >= 0 }:
       score[t,s] = q_t . k_s / sqrt(hs)          for s in S(t)
       att[t,s]   = exp(score[t,s]) / sum_{s' in S(t)} exp(score[t,s'])
       out_t      = sum_{s in S(t)} att[t,s] v_s.
   A dense causal layer has window = T (every s <= t); a banded layer has
   window = W, and its att rows hold only the W positions of the band, so
   it costs O(T W) time and memory, not O(T^2). Row t of att starts at
   position start(t) = max(0, t - window + 1) and holds span = min(window, T)
   floats, of which the first t - start(t) + 1 are used.                   */
static int attention_span(int window, int T) { return window < T ? window : T; }
static int attention_start(int window, int t) { return t - window + 1 > 0 ? t - window + 1 : 0; }

/* One query row of one head: positions start .. start+n-1, where position
   s lives in row s % rows of keys and values (rows apart by stride floats;
   the KV cache keeps a banded layer's keys in a ring of W rows). Writes
   att[0..n) and out[0..hs). */
static void attention_row(float *out, float *att, const float *q, const float *keys,
                          const float *values, size_t stride, int start, int n,
                          int rows, int hs) {
    float scale = 1.0f / sqrtf((float)hs), maxval = -FLT_MAX, sum = 0.0f;
    for (int j = 0; j < n; j++) {
        att[j] = gpt3__dot(q, keys + (size_t)((start + j) % rows) * stride, hs) * scale;
        if (att[j] > maxval) maxval = att[j];
    }
    for (int j = 0; j < n; j++) {
        att[j] = expf(att[j] - maxval);
        sum += att[j];
    }
    for (int i = 0; i < hs; i++) out[i] = 0.0f;
    for (int j = 0; j < n; j++) {
        const float *v = values + (size_t)((start + j) % rows) * stride;
        att[j] /= sum;
        for (int i = 0; i < hs; i++) out[i] += att[j] * v[i];
    }
}

static void attention_forward(float *out, float *att, const float *qkv,
                              int B, int T, int C, int NH, int window) {
    /* out (B,T,C), att (B,NH,T,span), qkv (B,T,3C) */
    int hs = C / NH, span = attention_span(window, T);
    #pragma omp parallel for collapse(3)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *seq = qkv + (size_t)b * T * 3 * C;
                float *a = att + (((size_t)b * NH + h) * T + t) * span;
                int start = attention_start(window, t), n = t - start + 1;
                attention_row(out + ((size_t)b * T + t) * C + h * hs, a,
                              seq + (size_t)t * 3 * C + h * hs, seq + C + h * hs,
                              seq + 2 * C + h * hs, 3 * (size_t)C, start, n, T, hs);
                for (int j = n; j < span; j++) a[j] = 0.0f;
            }
        }
    }
}

/* Backward, for one head, from dout_t = dL/dout_t:
       dL/dv_s       = sum_t att[t,s] dout_t
       dL/datt[t,s]  = dout_t . v_s
   the softmax Jacobian d att[t,s] / d score[t,s'] = att[t,s](1[s=s'] - att[t,s']):
       dL/dscore[t,s] = att[t,s] ( dL/datt[t,s] - sum_{s'} att[t,s'] dL/datt[t,s'] )
   and the scaled dot product:
       dL/dq_t = sum_s dL/dscore[t,s] k_s / sqrt(hs)
       dL/dk_s = sum_t dL/dscore[t,s] q_t / sqrt(hs).
   datt is scratch of att's shape. Split over (b, h): a head's slice of
   dqkv is written by one thread only.                                     */
static void attention_backward(float *dqkv, float *datt, const float *dout,
                               const float *qkv, const float *att,
                               int B, int T, int C, int NH, int window) {
    int hs = C / NH, span = attention_span(window, T);
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            for (int t = 0; t < T; t++) {
                const float *a = att + (((size_t)b * NH + h) * T + t) * span;
                float *da = datt + (((size_t)b * NH + h) * T + t) * span;
                const float *d_o = dout + ((size_t)b * T + t) * C + h * hs;
                const float *q = qkv + ((size_t)b * T + t) * 3 * C + h * hs;
                float *dq = dqkv + ((size_t)b * T + t) * 3 * C + h * hs;
                int start = attention_start(window, t), n = t - start + 1;
                float att_dot_datt = 0.0f;
                for (int j = 0; j < n; j++) {
                    size_t s_row = ((size_t)b * T + start + j) * 3 * C;
                    const float *v = qkv + s_row + 2 * C + h * hs;
                    float *dv = dqkv + s_row + 2 * C + h * hs;
                    da[j] = gpt3__dot(d_o, v, hs);
                    att_dot_datt += a[j] * da[j];
                    for (int i = 0; i < hs; i++) dv[i] += a[j] * d_o[i];
                }
                for (int j = 0; j < n; j++) {
                    size_t s_row = ((size_t)b * T + start + j) * 3 * C;
                    const float *k = qkv + s_row + C + h * hs;
                    float *dk = dqkv + s_row + C + h * hs;
                    float dscore = a[j] * (da[j] - att_dot_datt) * scale;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += dscore * k[i];
                        dk[i] += dscore * q[i];
                    }
                }
            }
        }
    }
}

/* ---- GELU (tanh approximation) -------------------------------------------
   y = 0.5 x (1 + tanh u),   u = sqrt(2/pi) (x + 0.044715 x^3)             */
#define GPT3__GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

static void gelu_forward(float *out, const float *inp, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GPT3__GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

/* dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,
   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2);   dL/dx = dy/dx dL/dy.
   In place is allowed (dinp == dout).                                     */
static void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GPT3__GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float du = GPT3__GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
        dinp[i] = grad * dout[i];
    }
}

/* ---- Residual connection -------------------------------------------------
   out = x + f(x). Its backward is the identity for both branches:
   dL/dx += dL/dout and dL/df += dL/dout. gpt3_backward therefore carries
   one buffer, dresidual, down the whole residual stream.                  */
static void residual_forward(float *out, const float *inp1, const float *inp2, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) out[i] = inp1[i] + inp2[i];
}

/* ======================================================================== */
/* Loss head: softmax cross-entropy over the vocabulary                     */
/* ======================================================================== */

/* For one position with logits z (V) and target y:
       p_v = exp(z_v - lse),   lse = log sum_v exp(z_v)
       l   = -log p_y = lse - z_y.
   The empirical risk over the N positions whose target is >= 0:
       L = (1/N) sum_n l_n.
   Returns N; lse is kept so the backward pass can form p without a
   second (B, T, V) buffer of probabilities.                               */
static int crossentropy_forward(float *losses, float *lse, const float *logits,
                                const int *targets, int B, int T, int V) {
    /* losses, lse (B,T), logits (B,T,V), targets (B,T) or NULL */
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *z = logits + (size_t)bt * V;
        float maxval = -FLT_MAX;
        double sum = 0.0;
        for (int v = 0; v < V; v++) if (z[v] > maxval) maxval = z[v];
        for (int v = 0; v < V; v++) sum += expf(z[v] - maxval);
        lse[bt] = maxval + (float)log(sum);
        losses[bt] = (targets && targets[bt] >= 0) ? lse[bt] - z[targets[bt]] : 0.0f;
    }
    int count = 0;
    for (int bt = 0; targets && bt < B * T; bt++) count += targets[bt] >= 0;
    return count;
}

/* dl/dz_v = p_v - 1[v = y]   (the softmax and the log cancel), so
       dL/dz[n,v] = (p[n,v] - 1[v = y_n]) / N,
   and 0 for ignored positions.                                             */
static void crossentropy_backward(float *dlogits, const float *logits,
                                  const float *lse, const int *targets,
                                  int count, int B, int T, int V) {
    float inv_n = count > 0 ? 1.0f / (float)count : 0.0f;
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *z = logits + (size_t)bt * V;
        float *dz = dlogits + (size_t)bt * V;
        int y = targets[bt];
        if (y < 0) continue;
        for (int v = 0; v < V; v++) {
            float p = expf(z[v] - lse[bt]);
            dz[v] += (p - (v == y ? 1.0f : 0.0f)) * inv_n;
        }
    }
}

/* ======================================================================== */
/* The model                                                                */
/* ======================================================================== */

/* Point each view in views[0..n) at consecutive slices of flat. */
static void gpt3__carve(float **views[], const size_t sizes[], int n, float *flat) {
    for (int i = 0; i < n; i++) {
        *views[i] = flat;
        flat += sizes[i];
    }
}

/* Layer l's attention window: W for the odd layers when W > 0 (banded),
   else T, which lets every position see all of its past (dense causal). */
static int gpt3__layer_window(const GPT3Config *cfg, int l, int T) {
    return (cfg->local_window > 0 && l % 2 == 1) ? cfg->local_window : T;
}

/* Floats of att before layer l's probabilities, when (B, T) are in use. */
static size_t gpt3__att_offset(const GPT3Config *cfg, int l, int B, int T) {
    size_t offset = 0;
    for (int j = 0; j < l; j++)
        offset += (size_t)B * cfg->num_heads * T *
                  attention_span(gpt3__layer_window(cfg, j, T), T);
    return offset;
}

#define GPT3__NUM_ACTIVATIONS 29

static void gpt3__activation_views(GPT3Activations *a,
                                   float **views[GPT3__NUM_ACTIVATIONS]) {
    float **v[GPT3__NUM_ACTIVATIONS] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att,
        &a->atty, &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean,
        &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->fcproj, &a->residual3,
        &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->lse, &a->losses,
        &a->dresidual, &a->dln, &a->datty, &a->dqkv, &a->datt, &a->dfch,
        &a->dlogits};
    memcpy(views, v, sizeof(v));
}

/* Floats in each activation buffer for (B, T), in the order of the views
   above; returns the total. */
static size_t gpt3__activation_sizes(const GPT3Config *cfg, int B, int T,
                                     size_t sizes[GPT3__NUM_ACTIVATIONS]) {
    size_t L = (size_t)cfg->num_layers, C = (size_t)cfg->channels;
    size_t V = (size_t)cfg->vocab_size, BT = (size_t)B * T, total = 0;
    size_t att = gpt3__att_offset(cfg, cfg->num_layers, B, T);
    size_t datt = (size_t)B * cfg->num_heads * T * T; /* layer 0 is dense */
    size_t s[GPT3__NUM_ACTIVATIONS] = {
        BT * C, L * BT * C, L * BT, L * BT, L * BT * 3 * C, att,
        L * BT * C, L * BT * C, L * BT * C, L * BT * C, L * BT,
        L * BT, L * BT * 4 * C, L * BT * 4 * C, L * BT * C, L * BT * C,
        BT * C, BT, BT, BT * V, BT, BT,
        BT * C, BT * C, BT * C, BT * 3 * C, datt, BT * 4 * C,
        BT * V};
    for (int i = 0; i < GPT3__NUM_ACTIVATIONS; i++) {
        sizes[i] = s[i];
        total += s[i];
    }
    return total;
}

/* True if (B, T) are within what this header and size_t can index. */
static int gpt3__batch_fits(const GPT3Config *cfg, int B, int T) {
    double C = cfg->channels, L = cfg->num_layers, V = cfg->vocab_size;
    double BT = (double)B * T;
    double floats = BT * (16.0 * L * C + V * 2.0 + L * cfg->num_heads * T + 16.0 * C);
    return BT <= 2147483647.0 && floats < (double)SIZE_MAX / 8.0;
}

GPT3DEF size_t gpt3_training_bytes(const GPT3Config *cfg, int B, int T) {
    size_t sizes[GPT3__NUM_ACTIVATIONS];
    if (gpt3_check_config(cfg) != GPT3_OK || B < 1 || T < 1 ||
        T > cfg->max_seq_len || !gpt3__batch_fits(cfg, B, T))
        return 0;
    size_t params = 4 * gpt3_num_parameters(cfg); /* params, grads, m, v */
    size_t acts = gpt3__activation_sizes(cfg, B, T, sizes);
    return (params + acts) * sizeof(float) + 2 * (size_t)B * T * sizeof(int);
}

/* Views of layer l's slice of each per-layer parameter tensor. */
static GPT3Tensors gpt3__layer_tensors(const GPT3Tensors *t, int l, int C) {
    size_t c = (size_t)C, ll = (size_t)l;
    GPT3Tensors r = *t;
    r.ln1w = t->ln1w + ll * c;                r.ln1b = t->ln1b + ll * c;
    r.qkvw = t->qkvw + ll * 3 * c * c;        r.qkvb = t->qkvb + ll * 3 * c;
    r.attprojw = t->attprojw + ll * c * c;    r.attprojb = t->attprojb + ll * c;
    r.ln2w = t->ln2w + ll * c;                r.ln2b = t->ln2b + ll * c;
    r.fcw = t->fcw + ll * 4 * c * c;          r.fcb = t->fcb + ll * 4 * c;
    r.fcprojw = t->fcprojw + ll * 4 * c * c;  r.fcprojb = t->fcprojb + ll * c;
    return r;
}

/* Views of layer l's slice of each per-layer activation. */
static GPT3Activations gpt3__layer_acts(const GPT3Activations *a,
                                        const GPT3Config *cfg, int l, int B, int T) {
    size_t btc = (size_t)B * T * cfg->channels, bt = (size_t)B * T, ll = (size_t)l;
    GPT3Activations r = *a;
    r.ln1 = a->ln1 + ll * btc;            r.ln1_mean = a->ln1_mean + ll * bt;
    r.ln1_rstd = a->ln1_rstd + ll * bt;   r.qkv = a->qkv + ll * 3 * btc;
    r.att = a->att + gpt3__att_offset(cfg, l, B, T);
    r.atty = a->atty + ll * btc;          r.attproj = a->attproj + ll * btc;
    r.residual2 = a->residual2 + ll * btc;
    r.ln2 = a->ln2 + ll * btc;            r.ln2_mean = a->ln2_mean + ll * bt;
    r.ln2_rstd = a->ln2_rstd + ll * bt;   r.fch = a->fch + ll * 4 * btc;
    r.fch_gelu = a->fch_gelu + ll * 4 * btc;
    r.fcproj = a->fcproj + ll * btc;      r.residual3 = a->residual3 + ll * btc;
    return r;
}

/* Element `index` of the standard normal stream of `seed`: Box-Muller on
   draws 2 index + 1 and 2 index + 2 of splitmix64. Counter-based, so each
   parameter's value is the same whatever thread computes it. */
static uint64_t gpt3__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define GPT3__GOLDEN 0x9E3779B97F4A7C15ULL

static float gpt3__normal_at(uint64_t seed, uint64_t index) {
    uint64_t a = gpt3__mix64(seed + (2 * index + 1) * GPT3__GOLDEN);
    uint64_t b = gpt3__mix64(seed + (2 * index + 2) * GPT3__GOLDEN);
    double u1 = ((double)(a >> 11) + 1.0) / 9007199254740992.0; /* (0, 1] */
    double u2 = (double)(b >> 11) / 9007199254740992.0;         /* [0, 1) */
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * GPT3__PI * u2));
}

/* Allocate m->params (uninitialised) and m->grads (zero) for cfg and set
   up the views. calloc's pages cost no memory until a backward writes them. */
static int gpt3__alloc_params(GPT3 *m, const GPT3Config *cfg) {
    int rc = gpt3_check_config(cfg);
    memset(m, 0, sizeof(*m));
    if (rc != GPT3_OK) return rc;
    m->config = *cfg;
    gpt3__tensor_sizes(cfg, m->tensor_sizes);
    m->num_parameters = gpt3_num_parameters(cfg);
    if (m->num_parameters > SIZE_MAX / sizeof(float)) return GPT3_ERR_NOMEM;
    m->params = (float *)GPT3_MALLOC(m->num_parameters * sizeof(float));
    m->grads = (float *)GPT3_CALLOC(m->num_parameters, sizeof(float));
    if (!m->params || !m->grads) {
        gpt3_free(m);
        return GPT3_ERR_NOMEM;
    }
    gpt3__point_tensors(&m->w, m->params, m->tensor_sizes);
    gpt3__point_tensors(&m->dw, m->grads, m->tensor_sizes);
    m->mean_loss = -1.0f;
    return GPT3_OK;
}

GPT3DEF int gpt3_init(GPT3 *m, const GPT3Config *cfg, uint64_t seed) {
    if (!m || !cfg) return GPT3_ERR_ARGUMENT;
    int rc = gpt3__alloc_params(m, cfg);
    if (rc != GPT3_OK) return rc;
    float residual_std = 0.02f / sqrtf(2.0f * (float)cfg->num_layers);
    size_t offset = 0;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        const char *name = gpt3__tensor_names[i];
        float *p = m->params + offset;
        long long n = (long long)m->tensor_sizes[i];
        int is_ln_scale = strcmp(name, "ln1w") == 0 || strcmp(name, "ln2w") == 0 ||
                          strcmp(name, "lnfw") == 0;
        float std = (strcmp(name, "attprojw") == 0 || strcmp(name, "fcprojw") == 0)
                        ? residual_std : 0.02f;
        #pragma omp parallel for
        for (long long j = 0; j < n; j++) {
            if (gpt3__tensor_is_decayed(i)) /* the weight matrices */
                p[j] = std * gpt3__normal_at(seed, offset + (uint64_t)j);
            else                            /* LayerNorm scale 1, shifts and biases 0 */
                p[j] = is_ln_scale ? 1.0f : 0.0f;
        }
        offset += m->tensor_sizes[i];
    }
    return GPT3_OK;
}

/* Make room for the activations of (B, T): grow if needed, never shrink. */
static int gpt3__reserve_activations(GPT3 *m, int B, int T) {
    size_t sizes[GPT3__NUM_ACTIVATIONS];
    float **views[GPT3__NUM_ACTIVATIONS];
    size_t total = gpt3__activation_sizes(&m->config, B, T, sizes);
    size_t tokens = (size_t)B * T;
    if (total > m->acts_capacity) {
        GPT3_FREE(m->acts_memory);
        m->acts_memory = (float *)GPT3_MALLOC(total * sizeof(float));
        m->acts_capacity = m->acts_memory ? total : 0;
        if (!m->acts_memory) return GPT3_ERR_NOMEM;
    }
    if (tokens > m->tokens_capacity) {
        GPT3_FREE(m->inputs);
        GPT3_FREE(m->targets);
        m->inputs = (int *)GPT3_MALLOC(tokens * sizeof(int));
        m->targets = (int *)GPT3_MALLOC(tokens * sizeof(int));
        m->tokens_capacity = (m->inputs && m->targets) ? tokens : 0;
        if (!m->tokens_capacity) return GPT3_ERR_NOMEM;
    }
    gpt3__activation_views(&m->acts, views);
    gpt3__carve(views, sizes, GPT3__NUM_ACTIVATIONS, m->acts_memory);
    return GPT3_OK;
}

/* Check every argument of a forward before anything is touched. */
static int gpt3__check_batch(const GPT3 *m, const int *inputs, const int *targets,
                             int B, int T) {
    if (!m || !m->params || !inputs) return GPT3_ERR_ARGUMENT;
    if (B < 1 || T < 1) return GPT3_ERR_BATCH;
    if (T > m->config.max_seq_len) return GPT3_ERR_SEQ_LEN;
    if (!gpt3__batch_fits(&m->config, B, T)) return GPT3_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= m->config.vocab_size) return GPT3_ERR_TOKEN;
        if (targets && targets[i] >= m->config.vocab_size) return GPT3_ERR_TARGET;
    }
    return GPT3_OK;
}

/* The forward pass, as in Section 2.1 of the paper (GPT-2's pre-LN block):
       x_0   = wte[tokens] + wpe[positions]
       x'_l  = x_l  + attention_l(LayerNorm1_l(x_l))          l = 0 .. L-1
       x_l+1 = x'_l + fcproj_l(GELU(fc_l(LayerNorm2_l(x'_l))))
       logits = LayerNormF(x_L) wte^T,   loss = cross-entropy(logits, targets) */
GPT3DEF int gpt3_forward(GPT3 *m, const int *inputs, const int *targets, int B, int T) {
    int rc = gpt3__check_batch(m, inputs, targets, B, T);
    if (rc != GPT3_OK) return rc;
    m->has_targets = 0;
    rc = gpt3__reserve_activations(m, B, T);
    if (rc != GPT3_OK) return rc;
    const GPT3Config *cfg = &m->config;
    int C = cfg->channels, L = cfg->num_layers, NH = cfg->num_heads, V = cfg->vocab_size;
    size_t btc = (size_t)B * T * C;
    GPT3Activations *a = &m->acts;
    memcpy(m->inputs, inputs, (size_t)B * T * sizeof(int));
    if (targets) memcpy(m->targets, targets, (size_t)B * T * sizeof(int));
    m->B = B;
    m->T = T;

    encoder_forward(a->encoded, m->inputs, m->w.wte, m->w.wpe, B, T, C);
    for (int l = 0; l < L; l++) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        GPT3Activations la = gpt3__layer_acts(a, cfg, l, B, T);
        const float *x = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * btc;
        layernorm_forward(la.ln1, la.ln1_mean, la.ln1_rstd, x, lw.ln1w, lw.ln1b, B, T, C);
        matmul_forward(la.qkv, la.ln1, lw.qkvw, lw.qkvb, B, T, C, 3 * C);
        attention_forward(la.atty, la.att, la.qkv, B, T, C, NH, gpt3__layer_window(cfg, l, T));
        matmul_forward(la.attproj, la.atty, lw.attprojw, lw.attprojb, B, T, C, C);
        residual_forward(la.residual2, x, la.attproj, btc);
        layernorm_forward(la.ln2, la.ln2_mean, la.ln2_rstd, la.residual2, lw.ln2w, lw.ln2b, B, T, C);
        matmul_forward(la.fch, la.ln2, lw.fcw, lw.fcb, B, T, C, 4 * C);
        gelu_forward(la.fch_gelu, la.fch, 4 * btc);
        matmul_forward(la.fcproj, la.fch_gelu, lw.fcprojw, lw.fcprojb, B, T, 4 * C, C);
        residual_forward(la.residual3, la.residual2, la.fcproj, btc);
    }
    layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (size_t)(L - 1) * btc,
                      m->w.lnfw, m->w.lnfb, B, T, C);
    matmul_forward(a->logits, a->lnf, m->w.wte, NULL, B, T, C, V);
    m->logits = a->logits;

    int count = crossentropy_forward(a->losses, a->lse, a->logits,
                                     targets ? m->targets : NULL, B, T, V);
    m->mean_loss = -1.0f;
    if (targets) {
        double sum = 0.0;
        for (size_t i = 0; i < (size_t)B * T; i++) sum += a->losses[i];
        m->mean_loss = count > 0 ? (float)(sum / count) : 0.0f;
        m->has_targets = 1;
    }
    return GPT3_OK;
}

GPT3DEF void gpt3_zero_grad(GPT3 *m) {
    if (m && m->grads) memset(m->grads, 0, m->num_parameters * sizeof(float));
}

/* The forward pass in reverse. Each residual connection passes its
   gradient through unchanged, so one buffer, dresidual, carries
   dL/dx down the stream and every branch adds its part to it. */
GPT3DEF int gpt3_backward(GPT3 *m) {
    if (!m || !m->params) return GPT3_ERR_ARGUMENT;
    if (!m->has_targets) return GPT3_ERR_NO_TARGETS;
    const GPT3Config *cfg = &m->config;
    int B = m->B, T = m->T, C = cfg->channels, L = cfg->num_layers;
    int NH = cfg->num_heads, V = cfg->vocab_size;
    size_t btc = (size_t)B * T * C, count = 0;
    GPT3Activations *a = &m->acts;
    for (size_t i = 0; i < (size_t)B * T; i++) count += m->targets[i] >= 0;

    memset(a->dlogits, 0, (size_t)B * T * V * sizeof(float));
    memset(a->dresidual, 0, btc * sizeof(float));
    memset(a->dln, 0, btc * sizeof(float));
    crossentropy_backward(a->dlogits, a->logits, a->lse, m->targets, (int)count, B, T, V);
    matmul_backward(a->dln, m->dw.wte, NULL, a->dlogits, a->lnf, m->w.wte, B, T, C, V);
    layernorm_backward(a->dresidual, m->dw.lnfw, m->dw.lnfb, a->dln,
                       a->residual3 + (size_t)(L - 1) * btc, m->w.lnfw,
                       a->lnf_mean, a->lnf_rstd, B, T, C);
    for (int l = L - 1; l >= 0; l--) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        GPT3Tensors ldw = gpt3__layer_tensors(&m->dw, l, C);
        GPT3Activations la = gpt3__layer_acts(a, cfg, l, B, T);
        const float *x = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * btc;
        memset(a->dfch, 0, 4 * btc * sizeof(float));
        memset(a->dln, 0, btc * sizeof(float));
        memset(a->datty, 0, btc * sizeof(float));
        memset(a->dqkv, 0, 3 * btc * sizeof(float));
        /* MLP branch: dL/dfcproj = dresidual */
        matmul_backward(a->dfch, ldw.fcprojw, ldw.fcprojb, a->dresidual, la.fch_gelu,
                        lw.fcprojw, B, T, 4 * C, C);
        gelu_backward(a->dfch, la.fch, a->dfch, 4 * btc);
        matmul_backward(a->dln, ldw.fcw, ldw.fcb, a->dfch, la.ln2, lw.fcw, B, T, C, 4 * C);
        layernorm_backward(a->dresidual, ldw.ln2w, ldw.ln2b, a->dln, la.residual2, lw.ln2w,
                           la.ln2_mean, la.ln2_rstd, B, T, C);
        /* attention branch: dL/dattproj = dresidual */
        memset(a->dln, 0, btc * sizeof(float));
        matmul_backward(a->datty, ldw.attprojw, ldw.attprojb, a->dresidual, la.atty,
                        lw.attprojw, B, T, C, C);
        attention_backward(a->dqkv, a->datt, a->datty, la.qkv, la.att, B, T, C, NH,
                           gpt3__layer_window(cfg, l, T));
        matmul_backward(a->dln, ldw.qkvw, ldw.qkvb, a->dqkv, la.ln1, lw.qkvw, B, T, C, 3 * C);
        layernorm_backward(a->dresidual, ldw.ln1w, ldw.ln1b, a->dln, x, lw.ln1w,
                           la.ln1_mean, la.ln1_rstd, B, T, C);
    }
    encoder_backward(m->dw.wte, m->dw.wpe, a->dresidual, m->inputs, B, T, C);
    return GPT3_OK;
}

GPT3DEF void gpt3_free(GPT3 *m) {
    if (!m) return;
    GPT3_FREE(m->params);
    GPT3_FREE(m->grads);
    GPT3_FREE(m->adam_m);
    GPT3_FREE(m->adam_v);
    GPT3_FREE(m->acts_memory);
    GPT3_FREE(m->inputs);
    GPT3_FREE(m->targets);
    memset(m, 0, sizeof(*m));
}

/* ======================================================================== */
/* Optimizer: AdamW, gradient clipping, learning-rate schedule              */
/* ======================================================================== */

/* Section 4's update is plain gradient descent with weight decay,
       theta <- theta - eta dL/dtheta - eta lambda theta.
   AdamW (Loshchilov & Hutter; the optimizer of GPT-3) replaces the raw
   gradient g by a per-parameter normalised running average:
       m = beta1 m + (1 - beta1) g            (first moment)
       v = beta2 v + (1 - beta2) g^2          (second moment)
       mhat = m / (1 - beta1^t),  vhat = v / (1 - beta2^t)   (bias correction)
       theta <- theta - eta ( mhat / (sqrt(vhat) + eps) + lambda theta ),
   with lambda = weight_decay for the 2-D weight matrices and 0 for biases
   and LayerNorm parameters. */
GPT3DEF int gpt3_adamw_step(GPT3 *m, float lr, float beta1, float beta2,
                            float eps, float weight_decay, int t) {
    if (!m || !m->params || t < 1) return GPT3_ERR_ARGUMENT;
    if (!m->adam_m) {
        m->adam_m = (float *)GPT3_CALLOC(m->num_parameters, sizeof(float));
        m->adam_v = (float *)GPT3_CALLOC(m->num_parameters, sizeof(float));
        if (!m->adam_m || !m->adam_v) {
            GPT3_FREE(m->adam_m);
            GPT3_FREE(m->adam_v);
            m->adam_m = m->adam_v = NULL;
            return GPT3_ERR_NOMEM;
        }
    }
    float correction1 = (float)(1.0 - pow(beta1, t));
    float correction2 = (float)(1.0 - pow(beta2, t));
    size_t offset = 0;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        float lambda = gpt3__tensor_is_decayed(i) ? weight_decay : 0.0f;
        long long n = (long long)m->tensor_sizes[i];
        float *theta = m->params + offset, *g = m->grads + offset;
        float *mom1 = m->adam_m + offset, *mom2 = m->adam_v + offset;
        #pragma omp parallel for
        for (long long j = 0; j < n; j++) {
            mom1[j] = beta1 * mom1[j] + (1.0f - beta1) * g[j];
            mom2[j] = beta2 * mom2[j] + (1.0f - beta2) * g[j] * g[j];
            float mhat = mom1[j] / correction1, vhat = mom2[j] / correction2;
            theta[j] -= lr * (mhat / (sqrtf(vhat) + eps) + lambda * theta[j]);
        }
        offset += m->tensor_sizes[i];
    }
    return GPT3_OK;
}

/* ||g|| = sqrt(sum_j g_j^2) over every parameter; if it exceeds max_norm the
   whole gradient is scaled to length max_norm, keeping its direction. */
GPT3DEF float gpt3_clip_grad_norm(GPT3 *m, float max_norm) {
    if (!m || !m->grads) return 0.0f;
    double sum = 0.0;
    for (size_t j = 0; j < m->num_parameters; j++) sum += (double)m->grads[j] * m->grads[j];
    double norm = sqrt(sum), coef = max_norm / (norm + 1e-6);
    if (max_norm > 0.0f && coef < 1.0) {
        for (size_t j = 0; j < m->num_parameters; j++) m->grads[j] *= (float)coef;
    }
    return (float)norm;
}

/* GPT-3 (paper, Appendix B): linear warmup, then cosine decay to 10%:
       eta(s) = eta_max (s + 1) / warmup                        s < warmup
       eta(s) = eta_min + (eta_max - eta_min) (1 + cos(pi p)) / 2,
                p = (s - warmup) / (decay - warmup)             s < decay
       eta(s) = eta_min = 0.1 eta_max                           after. */
GPT3DEF float gpt3_lr_schedule(int step, float max_lr, int warmup_steps, int decay_steps) {
    float min_lr = 0.1f * max_lr;
    if (step < warmup_steps) return max_lr * (float)(step + 1) / (float)warmup_steps;
    if (step >= decay_steps) return min_lr;
    double progress = (double)(step - warmup_steps) / (double)(decay_steps - warmup_steps);
    return (float)(min_lr + 0.5 * (max_lr - min_lr) * (1.0 + cos(GPT3__PI * progress)));
}

/* ======================================================================== */
/* Generation: sampling and the KV cache                                    */
/* ======================================================================== */

GPT3DEF void gpt3_rng_seed(GPT3Rng *rng, uint64_t seed) { rng->state = seed; }

GPT3DEF uint32_t gpt3_rng_u32(GPT3Rng *rng) {
    rng->state += GPT3__GOLDEN;
    return (uint32_t)(gpt3__mix64(rng->state) >> 32);
}

GPT3DEF float gpt3_rng_float(GPT3Rng *rng) {
    return (float)(gpt3_rng_u32(rng) >> 8) / 16777216.0f;
}

GPT3DEF int gpt3_sampler_init(GPT3Sampler *s, int vocab_size, float temperature,
                              int top_k, float top_p, uint64_t seed) {
    if (!s) return GPT3_ERR_ARGUMENT;
    memset(s, 0, sizeof(*s));
    if (vocab_size < 1 || top_k < 0 || !(top_p > 0.0f) || temperature != temperature)
        return GPT3_ERR_ARGUMENT;
    s->temperature = temperature;
    s->top_k = top_k;
    s->top_p = top_p;
    s->vocab_size = vocab_size;
    gpt3_rng_seed(&s->rng, seed);
    s->candidates = (GPT3Candidate *)GPT3_MALLOC((size_t)vocab_size * sizeof(GPT3Candidate));
    return s->candidates ? GPT3_OK : GPT3_ERR_NOMEM;
}

GPT3DEF void gpt3_sampler_free(GPT3Sampler *s) {
    if (!s) return;
    GPT3_FREE(s->candidates);
    memset(s, 0, sizeof(*s));
}

/* Most probable first; equal probabilities by token id, so the order (and
   the draw) is the same with every qsort. */
static int gpt3__by_probability(const void *a, const void *b) {
    const GPT3Candidate *x = (const GPT3Candidate *)a, *y = (const GPT3Candidate *)b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->token - y->token;
}

/* p_v = exp(z_v / tau) / sum_u exp(z_u / tau) for temperature tau. Top-k
   keeps the k most probable tokens; top-p (nucleus) the fewest most
   probable whose probabilities add up to at least p. The kept p are
   renormalised and one token is drawn with u ~ U[0, 1). */
GPT3DEF int gpt3_sampler_sample(GPT3Sampler *s, const float *logits) {
    if (!s || !s->candidates || !logits) return -1;
    int V = s->vocab_size, best = 0, n = 0;
    for (int v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    if (s->temperature <= 0.0f) return best;
    int truncate = (s->top_k > 0 && s->top_k < V) || s->top_p < 1.0f;
    /* a token with p < (1 - top_p) / (V - 1) can never be in the nucleus:
       leave it out before sorting (without top-k) */
    double total = 0.0, cutoff = 0.0;
    for (int v = 0; v < V; v++) total += exp((logits[v] - logits[best]) / s->temperature);
    if (s->top_p < 1.0f && s->top_k == 0 && V > 1) cutoff = (1.0 - s->top_p) / (V - 1);
    for (int v = 0; v < V; v++) {
        float p = (float)(exp((logits[v] - logits[best]) / s->temperature) / total);
        if (p >= cutoff || v == best) {
            s->candidates[n].p = p;
            s->candidates[n++].token = v;
        }
    }
    if (truncate) {
        qsort(s->candidates, (size_t)n, sizeof(GPT3Candidate), gpt3__by_probability);
        if (s->top_k > 0 && s->top_k < n) n = s->top_k;
        double kept = 0.0;
        for (int i = 0; i < n; i++) {
            kept += s->candidates[i].p;
            if (kept >= s->top_p) { n = i + 1; break; }
        }
    }
    double mass = 0.0, cumulative = 0.0;
    for (int i = 0; i < n; i++) mass += s->candidates[i].p;
    double u = gpt3_rng_float(&s->rng) * mass;
    for (int i = 0; i < n; i++) {
        cumulative += s->candidates[i].p;
        if (u < cumulative) return s->candidates[i].token;
    }
    return s->candidates[n - 1].token; /* rounding left u just past the end */
}

/* The KV cache. Generating token t+1 needs, in every layer, the keys and
   values of the positions token t attends to; they do not change once
   computed. So the cache keeps them, and each new token costs one
   position's work: its own q, k, v and one attention row, O(t) (dense) or
   O(W) (banded) instead of a forward over the whole sequence. A dense layer
   keeps max_seq_len positions; a banded layer only its last W, in a ring
   (position s in row s % W). */
static int gpt3__cache_rows(const GPT3Config *cfg, int l) {
    return attention_span(gpt3__layer_window(cfg, l, cfg->max_seq_len), cfg->max_seq_len);
}

GPT3DEF int gpt3_kv_init(GPT3KVCache *kv, const GPT3 *m) {
    if (!kv || !m || !m->params) return GPT3_ERR_ARGUMENT;
    memset(kv, 0, sizeof(*kv));
    const GPT3Config *cfg = &m->config;
    size_t C = (size_t)cfg->channels, rows = 0;
    for (int l = 0; l < cfg->num_layers; l++) rows += (size_t)gpt3__cache_rows(cfg, l);
    /* keys, values; x, xn, qkv, atty, proj, fch, fch_gelu; att; logits; mean, rstd */
    size_t total = 2 * rows * C + 15 * C + (size_t)cfg->max_seq_len + cfg->vocab_size + 2;
    kv->memory = (float *)GPT3_MALLOC(total * sizeof(float));
    if (!kv->memory) return GPT3_ERR_NOMEM;
    kv->keys = kv->memory;
    kv->values = kv->keys + rows * C;
    kv->x = kv->values + rows * C;
    kv->xn = kv->x + C;
    kv->qkv = kv->xn + C;
    kv->atty = kv->qkv + 3 * C;
    kv->proj = kv->atty + C;
    kv->fch = kv->proj + C;
    kv->fch_gelu = kv->fch + 4 * C;
    kv->att = kv->fch_gelu + 4 * C;
    kv->logits = kv->att + cfg->max_seq_len;
    kv->stats = kv->logits + cfg->vocab_size;
    kv->pos = 0;
    return GPT3_OK;
}

GPT3DEF void gpt3_kv_reset(GPT3KVCache *kv) { if (kv) kv->pos = 0; }

GPT3DEF void gpt3_kv_free(GPT3KVCache *kv) {
    if (!kv) return;
    GPT3_FREE(kv->memory);
    memset(kv, 0, sizeof(*kv));
}

/* gpt3_forward for one more position, t = kv->pos, reusing the cached keys
   and values of positions < t. The same layer functions at B = T = 1, except
   attention, which reads its past from the cache. */
GPT3DEF int gpt3_kv_forward(GPT3 *m, GPT3KVCache *kv, int token) {
    if (!m || !m->params || !kv || !kv->memory) return GPT3_ERR_ARGUMENT;
    const GPT3Config *cfg = &m->config;
    if (token < 0 || token >= cfg->vocab_size) return GPT3_ERR_TOKEN;
    if (kv->pos >= cfg->max_seq_len) return GPT3_ERR_SEQ_LEN;
    int C = cfg->channels, NH = cfg->num_heads, hs = C / NH, t = kv->pos;
    float *keys = kv->keys, *values = kv->values;
    encoder_forward(kv->x, &token, m->w.wte, m->w.wpe + (size_t)t * C, 1, 1, C);
    for (int l = 0; l < cfg->num_layers; l++) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        int window = gpt3__layer_window(cfg, l, cfg->max_seq_len);
        int rows = gpt3__cache_rows(cfg, l), start = attention_start(window, t);
        layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, lw.ln1w, lw.ln1b, 1, 1, C);
        matmul_forward(kv->qkv, kv->xn, lw.qkvw, lw.qkvb, 1, 1, C, 3 * C);
        memcpy(keys + (size_t)(t % rows) * C, kv->qkv + C, (size_t)C * sizeof(float));
        memcpy(values + (size_t)(t % rows) * C, kv->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++)
            attention_row(kv->atty + h * hs, kv->att, kv->qkv + h * hs, keys + h * hs,
                          values + h * hs, (size_t)C, start, t - start + 1, rows, hs);
        matmul_forward(kv->proj, kv->atty, lw.attprojw, lw.attprojb, 1, 1, C, C);
        residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
        layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, lw.ln2w, lw.ln2b, 1, 1, C);
        matmul_forward(kv->fch, kv->xn, lw.fcw, lw.fcb, 1, 1, C, 4 * C);
        gelu_forward(kv->fch_gelu, kv->fch, 4 * (size_t)C);
        matmul_forward(kv->proj, kv->fch_gelu, lw.fcprojw, lw.fcprojb, 1, 1, 4 * C, C);
        residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
        keys += (size_t)rows * C;
        values += (size_t)rows * C;
    }
    layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, m->w.lnfw, m->w.lnfb, 1, 1, C);
    matmul_forward(kv->logits, kv->xn, m->w.wte, NULL, 1, 1, C, cfg->vocab_size);
    kv->pos++;
    return GPT3_OK;
}

/* ======================================================================== */
/* Files: little-endian words, atomic writes                                */
/* ======================================================================== */

static int gpt3__little_endian(void) {
    uint32_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Reverse the bytes of each of n words of `width` bytes (2 or 4). */
static void gpt3__swap(void *words, size_t n, size_t width) {
    unsigned char *p = (unsigned char *)words;
    for (size_t i = 0; i < n; i++, p += width) {
        for (size_t a = 0, b = width - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
    }
}

/* Write n words of `width` bytes (int32, float32, uint16) little-endian. */
static int gpt3__write_le(FILE *f, const void *words, size_t n, size_t width) {
    if (gpt3__little_endian()) return fwrite(words, width, n, f) == n;
    unsigned char chunk[4096];
    const unsigned char *src = (const unsigned char *)words;
    size_t per_chunk = sizeof(chunk) / width;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < per_chunk ? n - done : per_chunk;
        memcpy(chunk, src + width * done, width * k);
        gpt3__swap(chunk, k, width);
        if (fwrite(chunk, width, k, f) != k) return 0;
        done += k;
    }
    return 1;
}

/* Read up to n little-endian words of `width` bytes; returns how many. */
static size_t gpt3__read_le(FILE *f, void *words, size_t n, size_t width) {
    size_t got = fread(words, width, n, f);
    if (!gpt3__little_endian()) gpt3__swap(words, got, width);
    return got;
}

static void gpt3__split64(uint32_t *words, uint64_t x) {
    words[0] = (uint32_t)x;
    words[1] = (uint32_t)(x >> 32);
}

static uint64_t gpt3__join64(const uint32_t *words) {
    return (uint64_t)words[0] | ((uint64_t)words[1] << 32);
}

/* Bytes from the current position to the end of f, or -1 if unknown. */
static long long gpt3__bytes_left(FILE *f) {
    long here = ftell(f);
    if (here < 0 || fseek(f, 0, SEEK_END) != 0) return -1;
    long end = ftell(f);
    if (fseek(f, here, SEEK_SET) != 0 || end < 0) return -1;
    return (long long)end - here;
}

/* Every file is written atomically: to "path.tmp" first, flushed to disk,
   then renamed over path, so a failure at any point (a full disk, a crash)
   leaves the previous file at path as it was. */
typedef struct { FILE *f; char *tmp; int ok; } GPT3__AtomicFile;

static int gpt3__atomic_open(GPT3__AtomicFile *a, const char *path) {
    size_t len = strlen(path);
    a->f = NULL;
    a->ok = 1;
    a->tmp = (char *)GPT3_MALLOC(len + 5);
    if (!a->tmp) return GPT3_ERR_NOMEM;
    memcpy(a->tmp, path, len);
    memcpy(a->tmp + len, ".tmp", 5);
    a->f = fopen(a->tmp, "wb");
    if (a->f) return GPT3_OK;
    GPT3_FREE(a->tmp);
    return GPT3_ERR_OPEN;
}

static void gpt3__atomic_write_le(GPT3__AtomicFile *a, const void *words, size_t n,
                                  size_t width) {
    a->ok = a->ok && gpt3__write_le(a->f, words, n, width);
}

static int gpt3__atomic_commit(GPT3__AtomicFile *a, const char *path) {
    int ok = a->ok && fflush(a->f) == 0;
#ifdef GPT3__HAVE_FSYNC
    ok = ok && fsync(fileno(a->f)) == 0;
#endif
    ok = (fclose(a->f) == 0) && ok;
#ifdef _WIN32
    if (ok) remove(path); /* Windows' rename does not replace */
#endif
    ok = ok && rename(a->tmp, path) == 0;
    if (!ok) remove(a->tmp);
    GPT3_FREE(a->tmp);
    return ok ? GPT3_OK : GPT3_ERR_WRITE;
}

/* ======================================================================== */
/* Data: token files and the batch loader                                   */
/* ======================================================================== */

/* A token file: 64 little-endian uint32 -- magic "GTKN", version 1,
   vocab_size, the tokenizer's fingerprint, the token count (2 words, low
   first), zeros -- then the tokens as little-endian uint16 (so V <= 65536,
   as GPT-2/GPT-3's 50257). The fingerprint lets a program refuse tokens
   made by another tokenizer. */
#define GPT3__TOKENS_MAGIC 0x4E4B5447 /* "GTKN" */

GPT3DEF int gpt3_tokens_save(const char *path, const uint16_t *tokens, size_t count,
                             int vocab_size, uint32_t tokenizer_id) {
    if (!path || (!tokens && count) || vocab_size < 1 || vocab_size > 65536)
        return GPT3_ERR_ARGUMENT;
    uint32_t header[64] = {0};
    header[0] = GPT3__TOKENS_MAGIC;
    header[1] = 1;
    header[2] = (uint32_t)vocab_size;
    header[3] = tokenizer_id;
    gpt3__split64(header + 4, count);
    GPT3__AtomicFile file;
    int rc = gpt3__atomic_open(&file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(&file, header, 64, 4);
    gpt3__atomic_write_le(&file, tokens, count, 2);
    return gpt3__atomic_commit(&file, path);
}

GPT3DEF int gpt3_tokens_load(GPT3Tokens *t, const char *path) {
    if (!t || !path) return GPT3_ERR_ARGUMENT;
    memset(t, 0, sizeof(*t));
    FILE *f = fopen(path, "rb");
    if (!f) return GPT3_ERR_OPEN;
    uint32_t header[64];
    size_t got = gpt3__read_le(f, header, 64, 4);
    int rc = GPT3_OK;
    uint64_t count = got == 64 ? gpt3__join64(header + 4) : 0;
    if (got < 64 || header[0] != GPT3__TOKENS_MAGIC || header[1] != 1 ||
        header[2] < 1 || header[2] > 65536)
        rc = GPT3_ERR_DATA;
    else {
        long long left = gpt3__bytes_left(f);
        if (left >= 0 && (uint64_t)left != 2 * count) rc = GPT3_ERR_DATA;
    }
    if (rc == GPT3_OK) {
        t->tokens = (uint16_t *)GPT3_MALLOC(count ? (size_t)count * 2 : 1);
        if (!t->tokens) rc = GPT3_ERR_NOMEM;
        else if (gpt3__read_le(f, t->tokens, (size_t)count, 2) != count) rc = GPT3_ERR_DATA;
    }
    for (size_t i = 0; rc == GPT3_OK && i < count; i++)
        if (t->tokens[i] >= header[2]) rc = GPT3_ERR_DATA;
    fclose(f);
    if (rc != GPT3_OK) {
        gpt3_tokens_free(t);
        return rc;
    }
    t->count = (size_t)count;
    t->vocab_size = (int)header[2];
    t->tokenizer_id = header[3];
    return GPT3_OK;
}

GPT3DEF void gpt3_tokens_free(GPT3Tokens *t) {
    if (!t) return;
    GPT3_FREE(t->tokens);
    memset(t, 0, sizeof(*t));
}

/* Batches of B windows of T + 1 consecutive tokens: inputs are the first T,
   targets the last T (each input's next token). Shuffled: each window
   starts at a random offset from the loader's RNG. Sequential: windows
   follow each other from the start, wrapping around at the end. */
GPT3DEF int gpt3_loader_init(GPT3DataLoader *dl, const GPT3Tokens *data, int B, int T,
                             int shuffle, uint64_t seed) {
    if (!dl || !data || !data->tokens) return GPT3_ERR_ARGUMENT;
    memset(dl, 0, sizeof(*dl));
    if (B < 1 || T < 1) return GPT3_ERR_BATCH;
    if (data->count < (size_t)T + 1) return GPT3_ERR_DATA_SHORT;
    dl->tokens = data->tokens;
    dl->count = data->count;
    dl->B = B;
    dl->T = T;
    dl->shuffle = shuffle;
    gpt3_rng_seed(&dl->rng, seed);
    dl->inputs = (int *)GPT3_MALLOC((size_t)B * T * sizeof(int));
    dl->targets = (int *)GPT3_MALLOC((size_t)B * T * sizeof(int));
    if (dl->inputs && dl->targets) return GPT3_OK;
    gpt3_loader_free(dl);
    return GPT3_ERR_NOMEM;
}

GPT3DEF void gpt3_loader_next(GPT3DataLoader *dl) {
    size_t T = (size_t)dl->T, last_start = dl->count - T - 1;
    for (int b = 0; b < dl->B; b++) {
        size_t start;
        if (dl->shuffle) {
            uint64_t r = ((uint64_t)gpt3_rng_u32(&dl->rng) << 32) | gpt3_rng_u32(&dl->rng);
            start = (size_t)(r % (last_start + 1));
        } else {
            if (dl->position > last_start) dl->position = 0;
            start = (size_t)dl->position;
            dl->position += T;
        }
        for (size_t t = 0; t < T; t++) {
            dl->inputs[b * T + t] = dl->tokens[start + t];
            dl->targets[b * T + t] = dl->tokens[start + t + 1];
        }
    }
}

GPT3DEF void gpt3_loader_free(GPT3DataLoader *dl) {
    if (!dl) return;
    GPT3_FREE(dl->inputs);
    GPT3_FREE(dl->targets);
    memset(dl, 0, sizeof(*dl));
}

/* ======================================================================== */
/* Checkpoints                                                              */
/* ======================================================================== */

#define GPT3__MAGIC 0x33545047   /* "GPT3" as little-endian bytes */
#define GPT3__VERSION 1
#define GPT3__HEADER_INTS 256


GPT3DEF int gpt3_save(const GPT3 *m, const char *checkpoint_path) {
    if (!m || !m->params || !checkpoint_path) return GPT3_ERR_ARGUMENT;
    const GPT3Config *c = &m->config;
    int32_t header[GPT3__HEADER_INTS] = {0};
    header[0] = GPT3__MAGIC;
    header[1] = GPT3__VERSION;
    header[2] = c->max_seq_len;
    header[3] = c->vocab_size;
    header[4] = c->num_layers;
    header[5] = c->num_heads;
    header[6] = c->channels;
    header[7] = c->local_window;
    GPT3__AtomicFile file;
    int rc = gpt3__atomic_open(&file, checkpoint_path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(&file, header, GPT3__HEADER_INTS, 4);
    gpt3__atomic_write_le(&file, m->params, m->num_parameters, 4);
    return gpt3__atomic_commit(&file, checkpoint_path);
}

/* Validate the header of an open checkpoint and return its config. */
static int gpt3__read_header(FILE *f, GPT3Config *cfg) {
    int32_t header[GPT3__HEADER_INTS];
    size_t got = gpt3__read_le(f, header, GPT3__HEADER_INTS, 4);
    if (ferror(f)) return GPT3_ERR_READ;
    if (got >= 1 && header[0] != GPT3__MAGIC) return GPT3_ERR_NOT_CHECKPOINT;
    if (got < GPT3__HEADER_INTS) return GPT3_ERR_TRUNCATED;
    if (header[1] != GPT3__VERSION) return GPT3_ERR_VERSION;
    cfg->max_seq_len = header[2];
    cfg->vocab_size = header[3];
    cfg->num_layers = header[4];
    cfg->num_heads = header[5];
    cfg->channels = header[6];
    cfg->local_window = header[7];
    return gpt3_check_config(cfg);
}

GPT3DEF int gpt3_load(GPT3 *m, const char *checkpoint_path) {
    if (!m || !checkpoint_path) return GPT3_ERR_ARGUMENT;
    memset(m, 0, sizeof(*m));
    FILE *f = fopen(checkpoint_path, "rb");
    if (!f) return GPT3_ERR_OPEN;
    GPT3Config cfg = {0, 0, 0, 0, 0, 0};
    int rc = gpt3__read_header(f, &cfg);
    if (rc == GPT3_OK) {
        /* check the size before allocating what a corrupt header asks for */
        long long left = gpt3__bytes_left(f);
        double need = (double)gpt3_num_parameters(&cfg) * sizeof(float);
        if (left >= 0 && (double)left < need) rc = GPT3_ERR_TRUNCATED;
    }
    if (rc == GPT3_OK) rc = gpt3__alloc_params(m, &cfg);
    if (rc == GPT3_OK && gpt3__read_le(f, m->params, m->num_parameters, 4) != m->num_parameters)
        rc = ferror(f) ? GPT3_ERR_READ : GPT3_ERR_TRUNCATED;
    fclose(f);
    if (rc != GPT3_OK) gpt3_free(m);
    return rc;
}

/* ---- Training state -------------------------------------------------------
   A separate file beside the checkpoint (a version-1 reader of the
   parameters never needs it): 64 little-endian uint32 -- magic "GTST",
   version 1, step, num_parameters (2 words, low first), data position
   (2 words), data RNG state (2 words), 1 if AdamW moments follow -- then
   AdamW's m and v, num_parameters float32 each. */
#define GPT3__STATE_MAGIC 0x54535447 /* "GTST" */

GPT3DEF int gpt3_save_state(const GPT3 *m, const GPT3TrainState *st, const char *path) {
    if (!m || !m->params || !st || !path || st->step < 0) return GPT3_ERR_ARGUMENT;
    uint32_t header[64] = {0};
    header[0] = GPT3__STATE_MAGIC;
    header[1] = 1;
    header[2] = (uint32_t)st->step;
    gpt3__split64(header + 3, m->num_parameters);
    gpt3__split64(header + 5, st->data_position);
    gpt3__split64(header + 7, st->data_rng);
    header[9] = m->adam_m != NULL;
    GPT3__AtomicFile file;
    int rc = gpt3__atomic_open(&file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(&file, header, 64, 4);
    if (m->adam_m) {
        gpt3__atomic_write_le(&file, m->adam_m, m->num_parameters, 4);
        gpt3__atomic_write_le(&file, m->adam_v, m->num_parameters, 4);
    }
    return gpt3__atomic_commit(&file, path);
}

GPT3DEF int gpt3_load_state(GPT3 *m, GPT3TrainState *st, const char *path) {
    if (!m || !m->params || !st || !path) return GPT3_ERR_ARGUMENT;
    uint32_t header[64];
    FILE *f = fopen(path, "rb");
    if (!f) return GPT3_ERR_OPEN;
    size_t got = gpt3__read_le(f, header, 64, 4);
    int rc = GPT3_OK;
    if (got >= 1 && header[0] != GPT3__STATE_MAGIC) rc = GPT3_ERR_NOT_CHECKPOINT;
    else if (got < 64) rc = GPT3_ERR_TRUNCATED;
    else if (header[1] != 1) rc = GPT3_ERR_VERSION;
    else if (gpt3__join64(header + 3) != m->num_parameters || header[2] > INT32_MAX)
        rc = GPT3_ERR_MISMATCH;
    size_t P = m->num_parameters;
    float *mom1 = NULL, *mom2 = NULL;
    if (rc == GPT3_OK && header[9]) {
        mom1 = (float *)GPT3_MALLOC(P * sizeof(float));
        mom2 = (float *)GPT3_MALLOC(P * sizeof(float));
        if (!mom1 || !mom2) rc = GPT3_ERR_NOMEM;
        else if (gpt3__read_le(f, mom1, P, 4) != P || gpt3__read_le(f, mom2, P, 4) != P)
            rc = ferror(f) ? GPT3_ERR_READ : GPT3_ERR_TRUNCATED;
    }
    fclose(f);
    if (rc != GPT3_OK) {
        GPT3_FREE(mom1);
        GPT3_FREE(mom2);
        return rc;
    }
    GPT3_FREE(m->adam_m);
    GPT3_FREE(m->adam_v);
    m->adam_m = mom1;
    m->adam_v = mom2;
    st->step = (int)header[2];
    st->data_position = gpt3__join64(header + 5);
    st->data_rng = gpt3__join64(header + 7);
    return GPT3_OK;
}

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

GPT3DEF const char *gpt3_strerror(int code) {
    static const char *messages[GPT3_NUM_ERRORS] = {
        "success",
        "invalid argument: a required pointer is NULL or a value is out of range",
        "invalid config: every size must be at least 1, channels must divide by "
        "num_heads, local_window must be 0 or more",
        "out of memory: try a smaller model, batch size B or sequence length T",
        "cannot open the file: check that the path exists and is readable/writable",
        "reading the file failed (I/O error)",
        "writing the file failed (disk full?); any previous file at that path is unchanged",
        "not a gpt3.h checkpoint: the file does not start with the magic \"GPT3\"",
        "unknown checkpoint version: this gpt3.h reads version 1; use a newer gpt3.h",
        "the file is truncated: it ends before all the parameters its header promises",
        "an input token id is outside [0, vocab_size)",
        "a target id is >= vocab_size (use a negative target to ignore a position)",
        "T is larger than the model's max_seq_len",
        "B and T must both be at least 1",
        "backward needs a forward with targets first: call gpt3_forward with "
        "non-NULL targets",
        "no preset of that name (see gpt3_preset_name for the list)",
        "not a gpt3.h token file, or a corrupt one: make it again from the text",
        "too few tokens: the data needs at least T + 1 tokens (use a smaller T or more text)",
        "the file belongs to another model or tokenizer (different sizes or vocabulary)",
    };
    if (code < 0 || code >= GPT3_NUM_ERRORS) return "unknown error code";
    return messages[code];
}

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#elif defined(_MSC_VER)
#pragma warning(pop)
#endif

#endif /* GPT3_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the gpt3.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
------------------------------------------------------------------------------
*/
