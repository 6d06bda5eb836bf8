/* gpt3.h - v0.7.4 - GPT-3 in one readable C header - public domain or MIT
                                                   (see the end of the file)

   A decoder-only Transformer language model, exactly as the GPT-3 paper
   ("Language Models are Few-Shot Learners", Brown et al. 2020, Section 2.1)
   describes it: GPT-2's architecture with alternating dense and locally
   banded sparse attention. Forward pass, backward pass (every gradient derived
   in a comment above the code that computes it), AdamW, the GPT-3 learning
   rate schedule, checkpoints that resume, fine-tuning (task heads with the
   binary and softmax cross-entropies, freezing, LoRA, soft prompts,
   adversarial training, dropout, distillation, evaluation reports, and
   the calls that put a fine-tuned model to use), generation with a KV cache and
   top-k/top-p sampling, GPT-2/GPT-3's BPE tokenizer (and training your own),
   token files and batches. C99, libc and libm only; OpenMP if you have it.

   The sections, in the order the data flows:
       config and presets, parameters, layers (each one's forward beside its
       backward), the loss heads, the model, the optimizer, fine-tuning,
       generation (sampling, the KV cache), evaluation, files, the
       tokenizer, data, checkpoints, prediction (a fine-tuned model in an
       application), the fast kernels (the packed matrix
       product and blocked attention that the model calls, each tested
       against its reference in the layers), errors. A reader who stops at
       the end of the model has read the whole of GPT-3.

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
           fprintf(stderr, "step %d loss %f\n", step, m.mean_loss);
       }
       gpt3_free(&m);

   Notation, used in every comment and every shape:
       B  batch size             T  sequence length (time)
       C  channels (d_model)     V  vocabulary size
       L  layers (n_layers)      NH attention heads     hs head size = C / NH
       W  local attention window (banded layers only)
   A tensor's shape is written beside it, e.g. `float *qkvw; // (L, 3C, C)`.
   The losses follow Section 4 of the fine-tuning article: the empirical risk
   L(theta) = (1/N) sum_i l(M_theta(x_i), y_i), written Loss in the
   comments below (L is the layer count there), gradients by the chain rule,
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
   A model's per-thread buffers are sized for the thread count at init/load.

   Many processes: with -DGPT3_MPI (and mpicc), gpt3_mpi_average_gradients
   makes N processes train one model on shares of each batch
   (gpt3_batch_share): data parallelism over MPI, as demo.c's train does.
   ZeRO stage 1 shares AdamW's moments out among them (gpt3_adamw_shard,
   gpt3_mpi_gather_parameters, gpt3_mpi_save_run).

   Speed: build with -O3 -march=native -fno-math-errno -fopenmp (-mcpu=native
   where that is the spelling). -march=native picks the micro-kernel for the
   host: AVX-512, AVX2+FMA, NEON or portable C ("The register tile"). The
   flag before -fopenmp is not fast-math (results are the same); it lets
   AdamW's sqrtf vectorise. Never -ffast-math or -Ofast, which change
   results. Results are the same bits for one build on any thread count;
   builds for other instruction sets round differently (within the tests'
   tolerances).

   Revision history:
       0.7.4  fine-tuning resumes: gpt3_snapshot_take / _restore, gpt3_save_tuning / _load_tuning;
              GPT3_ERR_LORA, gpt3_config_problem; the tokenizer's classes at Unicode 16.0
       0.7.3  ZeRO stage 1: gpt3_adamw_shard, gpt3_parameter_share, gpt3_load_run_shard,
              gpt3_mpi_gather_parameters, gpt3_mpi_save_run; the all-reduce in 4 MB pieces
       0.7.2  data parallelism over MPI: gpt3_batch_share, gpt3_mpi_average_gradients
       0.7.1  speed: the register tile per instruction set (AVX-512, AVX2+FMA, NEON, C)
       0.7.0  fine-tuning: soft prompts, FGM/PGD adversarial training, prediction calls
       0.6.7  the same bits on any thread count; saves that survive any interruption
       0.6.6  speed: AVX-512 intrinsics for the micro-kernel's packed slivers
       0.6.5  speed: the micro-kernel's operands by pointer; heads a block at a time
       0.6.4  speed: slivers of A read in place where that pays
       0.6.3  speed: tiles narrowed to 16 or 32 columns where C or a band ends
       0.6.2  speed: attention in blocks of 256 queries
       0.6.1  speed: a large A kept a K block at a time
       0.6.0  speed: attention's products skip what the band masks
       0.5.0  speed: attention in blocks as packed matmuls; vectorised e^-|x|
       0.4.0  speed: packed, register-tiled matmul (BLIS's loops)
       0.3.0  fine-tuning: task heads, freezing, LoRA, dropout, distillation
       0.2.0  tokenizers, token files, resuming, the KV cache, sampling
       0.1.0  forward, backward, AdamW, schedule, checkpoints, Table 2.1 presets
*/
#ifndef GPT3_H
#define GPT3_H

#include <stddef.h>
#include <stdint.h>

#if defined(GPT3_STATIC) && defined(__GNUC__)
#define GPT3DEF static __attribute__((unused)) /* a program may use a few */
#elif defined(GPT3_STATIC)
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
    GPT3_ERR_VOCAB,          /* encoder.json / vocab.bpe malformed or unmatched */
    GPT3_ERR_CORRUPT,        /* a file's header holds impossible values     */
    GPT3_ERR_NOT_FILE,       /* a folder or a pipe where a file must be     */
    GPT3_ERR_LORA,           /* saving a model whose LoRA adapters are not merged */
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
/* NULL if it does; else what is wrong with it, in words (the first rule it
   breaks, e.g. "channels must divide by num_heads"). */
GPT3DEF const char *gpt3_config_problem(const GPT3Config *cfg);
/* Number of parameters (floats) of a config; 0 if the config is invalid. */
GPT3DEF size_t gpt3_num_parameters(const GPT3Config *cfg);
/* Bytes that training at (B, T) allocates: parameters, gradients, AdamW's
   two moments, activations and backward scratch, and each thread's
   buffers for the matmul and attention (for the threads OpenMP would use
   now). Allocates nothing; 0 if the config or B, T are invalid. */
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
    float *dresidual; /* (B, T, C)       dLoss/d(residual stream)           */
    float *dbranch;   /* (B, T, C)       dLoss/d(branch before its dropout) */
    float *dln;       /* (B, T, C)       dLoss/d(LayerNorm output)          */
    float *datty;     /* (B, T, C)                                         */
    float *dqkv;      /* (B, T, 3C)                                        */
    float *datt;      /* (B, NH, T, span) largest span of any layer        */
    float *dfch;      /* (B, T, 4C)                                        */
    float *dlogits;   /* (B, T, V)                                         */
} GPT3Activations;

/* Low-rank adapters (LoRA) on the four matrices of every block. */
typedef struct {
    int rank;            /* r                                               */
    float alpha;         /* the update is scaled by alpha / r               */
    size_t num_parameters;
    float *params;       /* per layer: A (r, in) then B (out, r) for qkvw,
                            attprojw, fcw, fcprojw in turn                  */
    float *grads, *adam_m, *adam_v;
    float *u;            /* (L, 4, B*T, r) s x A^T, kept for the backward   */
    float *du;           /* (B*T, r) scratch                                */
    size_t u_capacity;
} GPT3LoRA;

/* Per-thread buffers of the packed matmul and the attention (the
   matmul's with the model, the attention's at the first forward of T). */
typedef struct {
    float *memory;       /* threads x floats_per_thread                      */
    size_t floats_per_thread; /* the matmul's panels, and attention's blocks
                            of scores and probabilities                     */
    int threads;         /* the most threads a layer uses                    */
} GPT3Scratch;

/* A task head on the final hidden states (see gpt3_head_attach). */
enum { GPT3_HEAD_BINARY, GPT3_HEAD_CLASSES, GPT3_HEAD_TAGS };
typedef struct {
    int kind;            /* GPT3_HEAD_BINARY: sigmoid, one logit; CLASSES:
                            softmax over K, one label a sequence; TAGS: softmax
                            over K, one label a token                       */
    int num_classes;     /* K (1 for binary)                                */
    float *params;       /* weight (K, C) then bias (K)                     */
    float *grads, *adam_m, *adam_v;
    float *hidden;       /* (B, C) the last real token's state (sequence heads) */
    float *logits;       /* (B, K) or (B, T, K) after a forward             */
    float *dlogits, *lse, *losses, *dhidden;
    int *labels;         /* (B) or (B, T) copy of the last forward's labels  */
    int *lengths;        /* (B) real tokens of each sequence                 */
    size_t capacity;     /* rows (B T) allocated                             */
    size_t batch_capacity; /* sequences (B) allocated                         */
    float mean_loss;     /* loss of the last forward with labels, else -1    */
    int has_labels;
    char **names;        /* the classes' names (a binary head: of 0 and 1), or
                            NULL; saved with the head                        */
    int num_names;
    char *names_memory;  /* the names, back to back                         */
} GPT3Head;

/* A soft prompt (see gpt3_prompt_attach). */
typedef struct {
    int length;          /* N vectors, at positions 0 .. N-1, before the tokens */
    float *params;       /* (N, C)                                          */
    float *grads, *adam_m, *adam_v;
} GPT3Prompt;

/* Adversarial training (see gpt3_set_adversarial); all 0: off. */
typedef struct {
    int steps;           /* 0: off; 1: FGM; K > 1: PGD's K steps            */
    float epsilon;       /* each example's perturbation has norm <= epsilon */
    float alpha;         /* PGD's step size                                 */
    float loss;          /* the loss of the last perturbed forward          */
    float *delta;        /* (B, N+T, C) r, added to the token embeddings    */
    float *saved_grads;  /* PGD: the clean gradients while it steps         */
    size_t delta_capacity, saved_capacity;
    int active;          /* 1: the forward adds delta                       */
} GPT3Adversary;

typedef struct {
    GPT3Config config;
    size_t num_parameters;                   /* floats in params          */
    size_t tensor_sizes[GPT3_NUM_TENSORS];   /* floats in each tensor     */
    float *params;       /* (num_parameters) the flat layout of INTERFACE.md */
    GPT3Tensors w;       /* views into params                               */
    float *grads;        /* (num_parameters) dLoss/dparams, same layout;
                            zero after init and load                        */
    GPT3Tensors dw;      /* views into grads                                */
    float *adam_m;       /* (adam_count) AdamW first moment; NULL until    */
    float *adam_v;       /* (adam_count) the first step: second moment      */
    size_t adam_first;   /* the moments are those of params[adam_first ..   */
    size_t adam_count;   /* adam_first + adam_count): all of them, unless   */
                         /* gpt3_adamw_shard gave this process a share      */
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
    /* fine-tuning: all off after init and load */
    int training;        /* 1: dropout is on                                */
    float dropout;       /* p at every dropout site                         */
    uint64_t dropout_seed; /* changes with every training forward           */
    int frozen_layers;   /* the lowest blocks that do not train (the input
                            embeddings freeze with them)                    */
    int frozen_final;    /* 1: the final LayerNorm does not train either    */
    GPT3LoRA *lora;      /* adapters, or NULL                               */
    GPT3Head *head;      /* a task head, or NULL                            */
    GPT3Prompt *prompt;  /* a soft prompt, or NULL                          */
    GPT3Adversary adversary; /* adversarial training's settings and buffers */
    const float *teacher_logits; /* distillation: the teacher's logits for
                            the next forward (same shape as ours), or NULL  */
    float distill_temperature, distill_alpha;
    GPT3Scratch scratch; /* the matmul's packing buffers, one set per thread */
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
   file as it was. GPT3_ERR_LORA while LoRA adapters are not merged. */
GPT3DEF int  gpt3_save(const GPT3 *m, const char *checkpoint_path);
/* inputs, targets: B*T ints, row-major (b, t). targets may be NULL
   (inference only); a target < 0 is ignored. After the call m->logits holds
   (B, T, V) and, with targets, m->mean_loss the mean cross-entropy over the
   positions not ignored (0 if every position is ignored). */
GPT3DEF int  gpt3_forward(GPT3 *m, const int *inputs, const int *targets,
                          int B, int T);
GPT3DEF void gpt3_zero_grad(GPT3 *m);
/* After a forward with targets: ADDS dLoss/dparams to m->grads (so call
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
    uint32_t tokenizer_id;    /* fingerprint of the training data's tokenizer */
} GPT3TrainState;
GPT3DEF int gpt3_save_state(const GPT3 *m, const GPT3TrainState *st, const char *path);
/* Replaces m's AdamW moments (its share of them after gpt3_adamw_shard:
   the file always holds all); GPT3_ERR_MISMATCH if the file was written
   for other parameters than m's (another model, or another step of the
   same run: the state keeps a fingerprint of the parameters it goes with). */
GPT3DEF int gpt3_load_state(GPT3 *m, GPT3TrainState *st, const char *path);
/* A checkpoint and its state (at checkpoint_path + ".state") saved as one:
   an interruption at any point (a crash, kill -9, a full disk) leaves a
   pair that gpt3_load_run reads back as the last save that completed. */
GPT3DEF int gpt3_save_run(const GPT3 *m, const GPT3TrainState *st, const char *checkpoint_path);
/* Loads that pair into *m and *st (as gpt3_load, then gpt3_load_state);
   finishes a save that was interrupted after its commit point. */
GPT3DEF int gpt3_load_run(GPT3 *m, GPT3TrainState *st, const char *checkpoint_path);

/* ZeRO stage 1 (Rajbhandari et al. 2020): optimizer state divided among
   the processes of a data-parallel run. Every process computes the same
   averaged gradient; process `rank` of `ranks` then keeps AdamW's moments
   for its own contiguous slice of the flat parameters alone
   (gpt3_parameter_share) and gpt3_adamw_step updates that slice alone; the
   processes then exchange their updated slices (gpt3_mpi_gather_parameters).
   The moments per process fall from 2 P floats to 2 P / ranks, and each
   parameter's update is the same arithmetic as without shards, so the same
   bits. Moments already present are cut to the slice. A sharded model's
   run is saved by gpt3_mpi_save_run (gpt3_save_state and gpt3_save_run
   refuse it: they lack the other slices). */
GPT3DEF int gpt3_adamw_shard(GPT3 *m, int rank, int ranks);
/* Parameters *first .. *first + *count - 1 of P are rank's share: P / ranks
   each, and one more for each of the first P % ranks ranks. */
GPT3DEF int gpt3_parameter_share(size_t P, int rank, int ranks, size_t *first, size_t *count);
/* gpt3_load_run, keeping AdamW's moments for rank's share alone (read from
   the state file's full moments, so a run saved by any number of processes
   resumes on any other number). */
GPT3DEF int gpt3_load_run_shard(GPT3 *m, GPT3TrainState *st, const char *checkpoint_path,
                                int rank, int ranks);

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
/* Fine-tuning                                                              */

/* Train only the top k blocks (with the final LayerNorm; the tied
   embedding/output head only when everything trains); 0: nothing of the
   model (a task head or adapters alone); < 0 or >= L: everything (the
   default). Frozen parameters keep their values, get no gradient and no
   optimizer update, and cost no backward work below the lowest block that
   trains. */
GPT3DEF void gpt3_freeze(GPT3 *m, int trainable_blocks);
/* Parameters the next AdamW step updates: the model's that are not frozen,
   the adapters', the head's and the soft prompt's. */
GPT3DEF size_t gpt3_trainable_parameters(const GPT3 *m);
/* training 1: dropout p on the embeddings, the attention probabilities and
   the residual branches; 0: evaluation (no dropout). */
GPT3DEF void gpt3_set_training(GPT3 *m, int training, float dropout, uint64_t seed);
/* Knowledge distillation for the next forwards (LM or head): the loss
   becomes (1 - alpha) hard + alpha tau^2 KL(teacher || student) at
   temperature tau. teacher_logits has the shape of this model's logits
   (B, T, V) or the head's; NULL turns it off. */
GPT3DEF void gpt3_set_distillation(GPT3 *m, const float *teacher_logits, float temperature,
                                   float alpha);
/* LoRA adapters of rank r (scale alpha / r) on every block's four
   matrices; they train with the model's AdamW step. Merge to fold them
   into the weights (then save as a normal checkpoint: gpt3_save refuses
   adapters not merged, which it would leave out). */
GPT3DEF int  gpt3_lora_attach(GPT3 *m, int rank, float alpha, uint64_t seed);
GPT3DEF int  gpt3_lora_merge(GPT3 *m);
/* A task head: GPT3_HEAD_BINARY (num_classes 1), GPT3_HEAD_CLASSES (2 or
   more) or GPT3_HEAD_TAGS. It trains with the model's AdamW step. */
GPT3DEF int  gpt3_head_attach(GPT3 *m, int kind, int num_classes, uint64_t seed);
/* inputs (B, T) right-padded, lengths (B) or NULL; labels (B) for a
   sequence head, (B, T) for tags (negative: ignored), or NULL. After it:
   m->head->logits, and m->head->mean_loss with labels. */
GPT3DEF int  gpt3_head_forward(GPT3 *m, const int *inputs, const int *lengths,
                               const int *labels, int B, int T);
GPT3DEF int  gpt3_head_backward(GPT3 *m);
/* A head (and the soft prompt, if m has one; or the prompt alone) in a
   file of its own ("GHED", version 3: see the files section). Load
   attaches what the file holds to m; GPT3_ERR_MISMATCH if m has other
   channels, or other parameters than the model it was saved with. */
GPT3DEF int  gpt3_head_save(const GPT3 *m, const char *path);
/* Name the head's classes (n = K; a binary head's two: of 0 and 1), each
   1 to 256 bytes; copied, and saved with the head (so a prediction can be
   named without the training file). */
GPT3DEF int  gpt3_head_set_names(GPT3 *m, const char *const *names, int n);
GPT3DEF int  gpt3_head_load(GPT3 *m, const char *path);
/* Prompt tuning (Lester et al. 2021): n trainable vectors of C values placed
   before every input's token embeddings, at positions 0 .. n-1 (the tokens
   follow, so T + n <= max_seq_len). Every forward (LM, head, KV cache) sees
   them; logits and the head's outputs keep the inputs' shape. They train
   with the model's AdamW step, without weight decay; gpt3_freeze(m, 0)
   trains them (and a head) alone. They start as the embeddings of
   init_tokens (n_init <= n of them, repeated to fill n), or N(0, 0.02)
   if init_tokens is NULL. gpt3_head_save saves them with the head. */
GPT3DEF int  gpt3_prompt_attach(GPT3 *m, int n, const int *init_tokens, int n_init,
                                uint64_t seed);
/* Adversarial training for the backwards that follow (steps 0 or epsilon
   0: off). gpt3_backward and gpt3_head_backward then add, to the clean
   batch's gradients, those of the same batch with each example's token
   embeddings moved by r, ||r||_2 <= epsilon: FGM (Miyato et al. 2017) with
   steps 1, r = epsilon g / ||g||, g = dLoss/d(embeddings); PGD (Madry et
   al. 2018) with steps K > 1: K steps of size alpha, each projected back
   onto the ball. After the backward, the logits are the last perturbed
   forward's (so the same calls score an attack on a model), mean_loss is
   still the clean loss, and m->adversary.loss the perturbed one. */
GPT3DEF int  gpt3_set_adversarial(GPT3 *m, int steps, float epsilon, float alpha);
/* Early stopping keeps the best epoch's model: a snapshot is a copy of the
   parameters that train (the model's only if some of it trains; the
   adapters', the head's, the soft prompt's), taken at the best dev score
   and restored at the end. Start from a zeroed snapshot ({0}); a later
   take from the same set-up reuses its memory (another set-up:
   GPT3_ERR_MISMATCH, as for a restore). */
typedef struct {
    float *copies[4];    /* the model's, the adapters', the head's, the
                            prompt's parameters; NULL: none of that kind    */
    size_t sizes[4];     /* floats in each copy                             */
} GPT3Snapshot;
GPT3DEF int  gpt3_snapshot_take(const GPT3 *m, GPT3Snapshot *s);
GPT3DEF int  gpt3_snapshot_restore(GPT3 *m, const GPT3Snapshot *s);
GPT3DEF void gpt3_snapshot_free(GPT3Snapshot *s);
/* A fine-tuning run's resume point, one file saved atomically: the
   parameters that train with AdamW's moments for them, the snapshot best
   (or NULL), and the caller's n_counters numbers (its step, its epoch,
   early stopping's best score as bits, ...). To load it, set m up as it
   was when saved (the same checkpoint, head, adapters, soft prompt and
   gpt3_freeze), then load: the file replaces what trains, its moments,
   *best (its earlier copies freed; all NULL if the file has none) and
   counters. GPT3_ERR_MISMATCH if m is set up otherwise, or n_counters is
   not the file's; m and *best are unchanged on any error. */
GPT3DEF int  gpt3_save_tuning(const GPT3 *m, const GPT3Snapshot *best, const uint64_t *counters,
                              int n_counters, const char *path);
GPT3DEF int  gpt3_load_tuning(GPT3 *m, GPT3Snapshot *best, uint64_t *counters, int n_counters,
                              const char *path);

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
    float *lora_u;  /* (C) an unmerged LoRA adapter's u (its rank is at most C) */
    float *memory;  /* one allocation behind all of the above              */
} GPT3KVCache;
GPT3DEF int  gpt3_kv_init(GPT3KVCache *kv, const GPT3 *m);
/* Run one token at position kv->pos (after a soft prompt's vectors, when
   the model has one and kv->pos is 0); kv->logits then holds its logits.
   GPT3_ERR_SEQ_LEN once max_seq_len positions are in the cache. */
GPT3DEF int  gpt3_kv_forward(GPT3 *m, GPT3KVCache *kv, int token);
GPT3DEF void gpt3_kv_reset(GPT3KVCache *kv);    /* forget every position   */
GPT3DEF void gpt3_kv_free(GPT3KVCache *kv);

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                */

typedef struct { uint64_t hash; size_t offset, length, count; } GPT3TokenCacheEntry;
typedef struct {
    int vocab_size;           /* tokens, <|endoftext|> included              */
    int is_bytes;             /* 1: the 256 bytes are the tokens, no BPE     */
    int eot;                  /* id of "<|endoftext|>", -1 if none           */
    uint32_t id;              /* fingerprint, stored in token files          */
    int error_line;           /* after a failed load: the line at fault      */
    unsigned char *bytes;     /* every token's bytes, back to back           */
    size_t *offsets;          /* (V + 1) token i is bytes[offsets[i] .. offsets[i+1]) */
    int (*merges)[3];         /* (num_merges) left, right, merged: by rank   */
    int num_merges;
    int byte_token[256];      /* the token of each single byte               */
    uint32_t *token_table;    /* hash: bytes -> id + 1                       */
    uint32_t *merge_table;    /* hash: (left, right) -> rank + 1             */
    size_t token_table_size, merge_table_size;
    size_t bytes_capacity, offsets_capacity, merges_capacity;
    int *links;               /* scratch of the BPE merge loop               */
    uint64_t *heap;
    size_t links_capacity, heap_capacity;
    GPT3TokenCacheEntry *cache; /* pieces already encoded                    */
    unsigned char *cache_arena;
    size_t cache_arena_size, cache_used, cache_entries;
} GPT3Tokenizer;
/* Bytes as tokens (V = 256). */
GPT3DEF int  gpt3_tokenizer_bytes(GPT3Tokenizer *tok);
/* GPT-2/GPT-3's files (or ones written by gpt3_tokenizer_save).
   GPT3_ERR_VOCAB if one is malformed or they do not match (tok->error_line
   says where). */
GPT3DEF int  gpt3_tokenizer_load(GPT3Tokenizer *tok, const char *encoder_json,
                                 const char *vocab_bpe);
GPT3DEF int  gpt3_tokenizer_save(const GPT3Tokenizer *tok, const char *encoder_json,
                                 const char *vocab_bpe);
/* Learn a byte-level BPE of vocab_size tokens (256 bytes, the merges,
   <|endoftext|>; fewer if the text runs out of repeated pairs) from text. */
GPT3DEF int  gpt3_tokenizer_train(GPT3Tokenizer *tok, const void *text, size_t n,
                                  int vocab_size);
/* Encode n bytes of any kind (UTF-8 or not); *ids is allocated with
   GPT3_MALLOC (free it with free() unless you replaced the allocator).
   "<|endoftext|>" in the text is plain text, as tiktoken's encode_ordinary. */
GPT3DEF int  gpt3_encode(GPT3Tokenizer *tok, const void *text, size_t n,
                         int **ids, size_t *n_ids);
/* Decode ids to bytes (*text allocated, NUL-terminated); GPT3_ERR_TOKEN for
   an id outside [0, V). */
GPT3DEF int  gpt3_decode(const GPT3Tokenizer *tok, const int *ids, size_t n,
                         unsigned char **text, size_t *n_text);
/* The bytes of one token (for streaming output), NULL if id is out of range. */
GPT3DEF const unsigned char *gpt3_token_bytes(const GPT3Tokenizer *tok, int id, size_t *len);
GPT3DEF void gpt3_tokenizer_free(GPT3Tokenizer *tok);

/* ------------------------------------------------------------------------ */
/* Prediction: a fine-tuned model inside an application (step 5)            */

/* What `demo finetune --out DIR` wrote: the checkpoint, its ".head" file if
   there is one (a task head and/or a soft prompt), and the tokenizer in
   the same folder (encoder.json and vocab.bpe; neither: bytes). */
GPT3DEF int  gpt3_load_finetuned(GPT3 *m, GPT3Tokenizer *tok, const char *checkpoint_path);
/* Probabilities per prediction: the head's K, or 2 for a binary head
   (P(0), P(1)); 0 without a head. */
GPT3DEF int  gpt3_head_outputs(const GPT3 *m);
/* The head's probabilities for a batch, inputs and lengths as for
   gpt3_head_forward: probs (B, outputs) for a sequence head, (B, T,
   outputs) for tags. */
GPT3DEF int  gpt3_head_probabilities(GPT3 *m, const int *inputs, const int *lengths, int B, int T,
                                     float *probs);
/* One text's class probabilities (gpt3_head_outputs floats). A text longer
   than the context keeps its first tokens, as fine-tuning cut it, and *cut
   (if not NULL) says so. */
GPT3DEF int  gpt3_classify(GPT3 *m, GPT3Tokenizer *tok, const void *text, size_t n, float *probs,
                           int *cut);
/* Words as fine-tuning for tags sees them: each word encoded with a space
   before it (but the first); first (n_words) gets the index of each word's
   first token in *ids (allocated as gpt3_encode's). */
GPT3DEF int  gpt3_encode_words(GPT3Tokenizer *tok, const char *const *words, int n_words,
                               int **ids, size_t *n_ids, int *first);
/* Tag each word (an index into the head's classes, read off its first
   token), and its probability if probs is not NULL; a word past the
   context gets -1 (and probability 0). */
GPT3DEF int  gpt3_tag_words(GPT3 *m, GPT3Tokenizer *tok, const char *const *words, int n_words,
                            int *tags, float *probs);

/* ------------------------------------------------------------------------ */
/* Evaluation                                                               */

/* In-context learning's scoring (the GPT-3 paper, Section 2.4): the
   log-likelihood of each of n_choices continuations after one context,
       logprobs[c] = sum_j log p(choice_c[j] | context, choice_c[0 .. j-1]),
   all choices in one batch: one forward (B = n_choices). greedy[c] (if not NULL) is 1 when every token of choice c is
   the most likely one. context has n_context >= 1 tokens; the longest
   choice must fit after it in max_seq_len, less a soft prompt's length
   (GPT3_ERR_SEQ_LEN otherwise: drop the context's start yourself). */
GPT3DEF int gpt3_score_choices(GPT3 *m, const int *context, int n_context, const int *const *choices,
                               const int *n_choice, int n_choices, double *logprobs, int *greedy);

typedef struct {
    double precision, recall, f1;
    long support;             /* gold examples (or entities) of the class     */
} GPT3Score;
typedef struct {
    int num_classes;          /* classes, or entity types                     */
    long *confusion;          /* (K, K) [gold][predicted]; classes only       */
    GPT3Score *per_class;     /* (K)                                          */
    GPT3Score macro, weighted, micro;
    double accuracy;          /* classes: correct / total                     */
    long total;
    const char **class_names; /* entity reports: the types found in the tags  */
} GPT3Report;
/* Classification: gold and predicted labels in [0, K) (gold < 0: skipped),
   K at most GPT3_REPORT_MAX_CLASSES (the confusion matrix is K x K). */
#define GPT3_REPORT_MAX_CLASSES 4096
GPT3DEF int    gpt3_report_classes(GPT3Report *r, const int *gold, const int *pred, size_t n, int K);
/* Entity-level scores of BIO tag sequences (seqeval's rules): tags index
   tag_names ("O", "B-PER", "I-PER", ...); a tag < 0 separates sentences. */
GPT3DEF int    gpt3_report_entities(GPT3Report *r, const int *gold, const int *pred, size_t n,
                                    const char *const *tag_names, int n_tags);
/* scikit-learn's classification_report layout (and the confusion matrix
   for classes) into buf; returns the length it needed. */
GPT3DEF size_t gpt3_report_format(const GPT3Report *r, const char *const *class_names,
                                  char *buf, size_t size);
GPT3DEF void   gpt3_report_free(GPT3Report *r);

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

/* ------------------------------------------------------------------------ */
/* Data parallelism: one model trained on N processes (ranks)               */

/* Rank `rank` of `ranks` takes rows *first .. *first + *count - 1 of a
   global batch of B rows (B / ranks consecutive rows each): a rank's share
   is a function of the batch (so of the step), the rank and N only.
   GPT3_ERR_ARGUMENT when ranks does not divide B. */
GPT3DEF int gpt3_batch_share(int B, int rank, int ranks, int *first, int *count);

#ifdef __cplusplus
}
#endif

#ifdef GPT3_MPI
#include <mpi.h>
#ifdef __cplusplus
extern "C" {
#endif
/* m->grads (the model's parameters' gradients, not a task head's) becomes
   their mean over the ranks of comm, on every rank. Each rank's gradient is
   that of the mean loss over its share of the batch; the shares are equal,
   so the mean of the gradients is the gradient of the mean loss over the
   whole batch: dLoss/dtheta = (1/N) sum_r dLoss_r/dtheta. MPI_Allreduce
   sums them in pieces of 4 MB, then a scale by 1/N: the same bits on
   every rank (the sum is computed once and sent to all), and from run to
   run (Open MPI chooses its reduction from N and the sizes, never from
   timing). GPT3_ERR_ARGUMENT if MPI reports an error. */
GPT3DEF int gpt3_mpi_average_gradients(GPT3 *m, MPI_Comm comm);
/* ZeRO-1's exchange, after gpt3_adamw_step on every rank of comm, each
   sharded with gpt3_adamw_shard(m, its rank, the size of comm): each rank
   broadcasts the slice of m->params it updated, so that all hold every
   updated parameter, the same bits (nothing is summed). */
GPT3DEF int gpt3_mpi_gather_parameters(GPT3 *m, MPI_Comm comm);
/* gpt3_save_run for a model sharded as above; every rank of comm calls it.
   Rank 0 writes the checkpoint and the state file, taking the other ranks'
   moments share after share, 4 MB at a time, into the file: no process
   ever holds all of them. The state file is the one gpt3_save_run writes,
   so it resumes on any number of ranks. Every rank returns rank 0's
   result; GPT3_ERR_ARGUMENT on all if the ranks are not sharded as comm
   says, or disagree on whether they hold moments. */
GPT3DEF int gpt3_mpi_save_run(const GPT3 *m, const GPT3TrainState *st, const char *checkpoint_path,
                              MPI_Comm comm);
#ifdef __cplusplus
}
#endif
#endif

#endif /* GPT3_H */

/* ======================================================================== */
/*                             IMPLEMENTATION                               */
/* ======================================================================== */
#ifdef GPT3_IMPLEMENTATION

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
/* Intrinsics where the compiler targets them (-march=native, -mcpu=native):
   x86's AVX for the 8 x 8 transpose of the matmul's packing, and AVX-512,
   AVX2 + FMA or AArch64's NEON for the micro-kernel's packed slivers (see
   "The register tile"); plain C does the rest. */
#ifdef __AVX__
#include <immintrin.h>
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif
/* POSIX, where it is on: fsync (so a saved checkpoint survives a power
   cut) and sysconf (the size of the L2 cache) */
#if (defined(__unix__) || defined(__APPLE__)) && \
    (!defined(__STRICT_ANSI__) || defined(_POSIX_C_SOURCE))
#define GPT3__HAVE_POSIX 1
#include <fcntl.h>
#include <unistd.h>
#endif

#if defined(GPT3_MALLOC) || defined(GPT3_CALLOC) || defined(GPT3_FREE)
#if !defined(GPT3_MALLOC) || !defined(GPT3_CALLOC) || !defined(GPT3_FREE)
#error "gpt3.h: define all three of GPT3_MALLOC, GPT3_CALLOC and GPT3_FREE, or none"
#endif
#else
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

/* splitmix64's finaliser: a 64-bit hash behind every random number here
   (initialisation, dropout masks, sampling) and the hash tables. */
static uint64_t gpt3__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define GPT3__GOLDEN 0x9E3779B97F4A7C15ULL

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

GPT3DEF const char *gpt3_config_problem(const GPT3Config *cfg) {
    if (!cfg) return "no config";
    if (cfg->max_seq_len < 1 || cfg->vocab_size < 1 || cfg->num_layers < 1 ||
        cfg->num_heads < 1 || cfg->channels < 1)
        return "the context, vocabulary, layers, heads and channels must each be at least 1";
    if (cfg->local_window < 0) return "local_window must be 0 (every layer dense) or more";
    if (cfg->channels % cfg->num_heads != 0) return "channels must divide by num_heads";
    /* 4C must fit an int (loops index the rows of a matrix with int), and
       the parameter count a size_t, with room to spare (175B is 1.7e11) */
    double C = cfg->channels, L = cfg->num_layers;
    double params = ((double)cfg->vocab_size + cfg->max_seq_len + 2) * C + L * (12 * C * C + 13 * C);
    if (cfg->channels > 8192 * 4) return "channels must be at most 32768";
    if (cfg->vocab_size > (1 << 28)) return "the vocabulary must be at most 2^28 tokens";
    if (cfg->max_seq_len > (1 << 24)) return "the context must be at most 2^24 positions";
    if (params > 1e15) return "the model must have at most 1e15 parameters";
    return NULL;
}

GPT3DEF int gpt3_check_config(const GPT3Config *cfg) {
    if (!cfg) return GPT3_ERR_ARGUMENT;
    return gpt3_config_problem(cfg) ? GPT3_ERR_CONFIG : GPT3_OK;
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
/* dout = dLoss/dout and, by the chain rule,                                */
/*     dLoss/dinp   = (d out / d inp)^T   dout                              */
/*     dLoss/dtheta = (d out / d theta)^T dout,                             */
/* which it ADDS (+=) to dinp and dtheta: a tensor used twice (wte, the     */
/* residual stream) collects both contributions. Two work in place and so   */
/* write dinp instead: GELU's (dinp may be dout) and dropout's (one call    */
/* scales x in place, forward or backward). Loss is the loss; L, in shapes  */
/* such as (L, C), the layer count.                                         */
/* ======================================================================== */

static int gpt3__min(int a, int b) { return a < b ? a : b; }
static int gpt3__max(int a, int b) { return a > b ? a : b; }

/* The threads a parallel region may use (1 without OpenMP). */
static int gpt3__max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Inside a parallel region: this thread's number (0 without OpenMP). */
static int gpt3__thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Inside a parallel region: this thread's share [lo, hi) of 0..n, cut at
   multiples of unit; returns the thread's number. */
static int gpt3__thread_range(int n, int unit, int *lo, int *hi) {
    int id = gpt3__thread_id(), threads = 1, units = (n + unit - 1) / unit;
#ifdef _OPENMP
    threads = omp_get_num_threads();
#endif
    *lo = gpt3__min(n, (int)((long long)units * id / threads) * unit);
    *hi = gpt3__min(n, (int)((long long)units * (id + 1) / threads) * unit);
    return id;
}

/* p[0..n) = 0, in pieces over the threads when n is large: one core
   stores at about half the machine's bandwidth (GPT-3 Small's gradients,
   500 MB, take 16 ms on one thread and 10 ms on two). */
#define GPT3__ZERO_PIECE ((size_t)1 << 16)
static void gpt3__zero(float *p, size_t n) {
    long long pieces = (long long)((n + GPT3__ZERO_PIECE - 1) / GPT3__ZERO_PIECE);
    #pragma omp parallel for schedule(static) if (pieces >= 8)
    for (long long i = 0; i < pieces; i++) {
        size_t lo = (size_t)i * GPT3__ZERO_PIECE;
        memset(p + lo, 0, (n - lo < GPT3__ZERO_PIECE ? n - lo : GPT3__ZERO_PIECE) * sizeof(float));
    }
}

/* e^-|x|, in a form the compiler vectorises (libm's expf and tanhf take one
   value a call, and GELU's tanh was a quarter of a training step). Every
   exponential of the softmaxes and of tanh is of this kind: softmax takes
   e^(z - max z), z - max z <= 0, and tanh needs only e^-2|u|.
     - |x| is clamped to 87 (e^-87 is still a normal float) by comparing its
       bits as an integer: a float compare would stop the vectoriser (it
       may trap), and NaN is handed back as it came;
     - -|x| = k ln2 + r with k an integer and |r| <= ln2/2; k is rounded by
       adding and taking away 1.5 * 2^23, where a float has no fraction bits;
     - e^-|x| = 2^k e^r: 2^k is built in the float's exponent bits, e^r
       by its Taylor series to r^7 (error r^8/8! < 6e-9).
   The relative error is below 1e-7, about one ulp, as expf's.             */
static float gpt3__exp_negative(float x) {
    const uint32_t magnitude_87 = 0x42AE0000u, infinity = 0x7F800000u;
    uint32_t bits, magnitude, clamped, result_bits;
    float y, result, two_k;
    memcpy(&bits, &x, sizeof(bits));
    magnitude = bits & 0x7FFFFFFFu;
    clamped = (magnitude > magnitude_87 ? magnitude_87 : magnitude) | 0x80000000u;
    memcpy(&y, &clamped, sizeof(y)); /* y = -min(|x|, 87) */
    float k = (y * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(y / ln2) */
    float r = (y - k * 0.693145752f) - k * 1.42860677e-6f;      /* ln2 split in two */
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
                   r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t exponent = ((int32_t)k + 127) * (1 << 23);
    memcpy(&two_k, &exponent, sizeof(two_k));
    result = p * two_k;
    memcpy(&result_bits, &result, sizeof(result_bits));
    result_bits = magnitude > infinity ? bits : result_bits; /* NaN stays NaN */
    memcpy(&result, &result_bits, sizeof(result));
    return result;
}

/* ---- Embedding ----------------------------------------------------------
   out[b,t,:] = wte[tok[b,t],:] + wpe[t,:]
   With a soft prompt of N vectors (prompt tuning, Lester et al. 2021) the
   sequence is N positions longer and they come first:
       out[b,t,:]   = prompt[t,:] + wpe[t,:]                 t < N
       out[b,N+t,:] = wte[tok[b,t],:] + wpe[N+t,:]           t < T      */
static void gpt3__encoder_forward(float *out, const int *tokens, const float *wte,
                                  const float *wpe, const float *prompt, int N, int B, int T,
                                  int C) {
    /* out (B,N+T,C), tokens (B,T), wte (V,C), wpe (maxT,C), prompt (N,C) */
    int S = N + T; /* positions */
    #pragma omp parallel for
    for (int bs = 0; bs < B * S; bs++) {
        int b = bs / S, s = bs % S;
        float *o = out + (size_t)bs * C;
        const float *te = s < N ? prompt + (size_t)s * C : wte + (size_t)tokens[b * T + s - N] * C;
        const float *pe = wpe + (size_t)s * C;
        for (int i = 0; i < C; i++) o[i] = te[i] + pe[i];
    }
}

/* Each output row is a copy of one wte (or prompt) row plus one wpe row, so
       dLoss/dwte[v,:]    = sum over (b,t) with tok[b,t] = v of dout[b,N+t,:]
       dLoss/dprompt[t,:] = sum over b of dout[b,t,:]                 t < N
       dLoss/dwpe[s,:]    = sum over b of dout[b,s,:].
   The soft prompt's gradient is the gradient of the empirical risk at its
   input positions, summed over the examples that share it. Two positions
   holding the same token write the same row, so the threads split the
   channels i instead, each going over every position in order. A NULL
   gradient is one that is not wanted (a frozen tensor). */
static void gpt3__encoder_backward(float *dwte, float *dwpe, float *dprompt, const float *dout,
                                   const int *tokens, int N, int B, int T, int C) {
    /* dwte (V,C) +=, dwpe (maxT,C) +=, dprompt (N,C) +=, dout (B,N+T,C), tokens (B,T) */
    int S = N + T;
    #pragma omp parallel
    {
        int lo, hi;
        gpt3__thread_range(C, 16, &lo, &hi);
        for (int bs = 0; bs < B * S; bs++) {
            int b = bs / S, s = bs % S;
            const float *d = dout + (size_t)bs * C;
            float *dte = s < N ? (dprompt ? dprompt + (size_t)s * C : NULL)
                               : (dwte ? dwte + (size_t)tokens[b * T + s - N] * C : NULL);
            float *dpe = dwpe ? dwpe + (size_t)s * C : NULL;
            for (int i = lo; dte && i < hi; i++) dte[i] += d[i];
            for (int i = lo; dpe && i < hi; i++) dpe[i] += d[i];
        }
    }
}

/* ---- LayerNorm ----------------------------------------------------------
   For one row x of C values:
       mu = (1/C) sum_i x_i,   sigma^2 = (1/C) sum_i (x_i - mu)^2,
       r = 1 / sqrt(sigma^2 + 1e-5),   xhat_i = (x_i - mu) r,
       y_i = w_i xhat_i + b_i.
   mean and rstd (= r) are kept for the backward pass.                     */
static void gpt3__layernorm_forward(float *out, float *mean, float *rstd,
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

/* With dy = dLoss/dy for one row:
       dLoss/db_i = dy_i,   dLoss/dw_i = dy_i xhat_i          (summed over rows)
   and with g_i = dy_i w_i = dLoss/dxhat_i, since xhat depends on every x_j
   through mu and r (d mu/dx_j = 1/C, d r/dx_j = -r^3 (x_j - mu)/C):
       dLoss/dx_j = r ( g_j - (1/C) sum_i g_i - xhat_j (1/C) sum_i g_i xhat_i ).
   dinp rows are independent (parallel over rows); dweight and dbias sum
   over rows, so the threads split the channels, each summing its channels
   over the rows in one fixed order.                                       */
static void gpt3__layernorm_backward(float *dinp, float *dweight, float *dbias,
                                     const float *dout, const float *inp,
                                     const float *weight, const float *mean,
                                     const float *rstd, int B, int T, int C) {
    /* dinp (B,T,C) +=, dweight, dbias (C) += or both NULL, dout, inp (B,T,C),
       weight (C), mean, rstd (B,T) */
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
    #pragma omp parallel
    {
        int lo, hi;
        gpt3__thread_range(C, 16, &lo, &hi);
        for (int bt = 0; bt < B * T; bt++) {
            const float *dy = dout + (size_t)bt * C, *x = inp + (size_t)bt * C;
            for (int i = lo; i < hi; i++) {
                dweight[i] += dy[i] * (x[i] - mean[bt]) * rstd[bt];
                dbias[i] += dy[i];
            }
        }
    }
}

/* ---- Matmul (torch.nn.Linear) --------------------------------------------
   out[n,o] = sum_i inp[n,i] weight[o,i] + bias[o],  i.e.  out = inp W^T + b,
   for the N = B*T rows n. From it, by the chain rule:
       dLoss/dinp[n,i] = sum_o dout[n,o] W[o,i]      dinp = dout W
       dLoss/dW[o,i]   = sum_n dout[n,o] inp[n,i]    dW   = dout^T inp
       dLoss/db[o]     = sum_n dout[n,o].
   Three matrix products, which are nearly all of the model's arithmetic.
   First the simple reference versions, then the fast ones the model uses;
   the tests hold the fast ones to the reference at awkward shapes.        */

/* Dot product with 16 independent partial sums, so the compiler keeps
   them in a vector register, folded in halves at the end (a tree of 4
   vector adds, not a chain of 16); a fixed order, so deterministic. */
#define GPT3__LANES 16
static float gpt3__fold_sum(float *lane) {
    for (int half = GPT3__LANES / 2; half > 0; half /= 2)
        for (int k = 0; k < half; k++) lane[k] += lane[k + half];
    return lane[0];
}

static float gpt3__dot(const float *a, const float *b, int n) {
    float lane[GPT3__LANES] = {0};
    int i = 0;
    for (; i + GPT3__LANES <= n; i += GPT3__LANES)
        for (int k = 0; k < GPT3__LANES; k++) lane[k] += a[i + k] * b[i + k];
    for (; i < n; i++) lane[i % GPT3__LANES] += a[i] * b[i];
    return gpt3__fold_sum(lane);
}

/* sum_i x_i and max_i x_i (-FLT_MAX for n = 0) in the same lanes. */
static float gpt3__sum(const float *x, int n) {
    float lane[GPT3__LANES] = {0};
    int i = 0;
    for (; i + GPT3__LANES <= n; i += GPT3__LANES)
        for (int k = 0; k < GPT3__LANES; k++) lane[k] += x[i + k];
    for (; i < n; i++) lane[i % GPT3__LANES] += x[i];
    return gpt3__fold_sum(lane);
}

static float gpt3__max_value(const float *x, int n) {
    float lane[GPT3__LANES], best;
    int i = 0;
    for (int k = 0; k < GPT3__LANES; k++) lane[k] = -FLT_MAX;
    for (; i + GPT3__LANES <= n; i += GPT3__LANES)
        for (int k = 0; k < GPT3__LANES; k++) lane[k] = x[i + k] > lane[k] ? x[i + k] : lane[k];
    for (; i < n; i++) lane[i % GPT3__LANES] = x[i] > lane[i % GPT3__LANES] ? x[i] : lane[i % GPT3__LANES];
    best = lane[0];
    for (int k = 1; k < GPT3__LANES; k++) best = lane[k] > best ? lane[k] : best;
    return best;
}

/* Reference: every output is one dot product, the outputs o split over
   the threads (so one row, as in generation, uses them all). */
static void gpt3__matmul_forward_reference(float *out, const float *inp, const float *weight,
                                           const float *bias, int B, int T, int C, int OC) {
    /* out (B,T,OC), inp (B,T,C), weight (OC,C), bias (OC) or NULL */
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++)
        for (int n = 0; n < B * T; n++)
            out[(size_t)n * OC + o] = (bias ? bias[o] : 0.0f) +
                                      gpt3__dot(inp + (size_t)n * C, weight + (size_t)o * C, C);
}

/* Reference: each gradient a sum of scaled rows. dinp is split over rows
   n and dW, db over rows o, so no two threads write the same element.
   Any of dinp, dweight, dbias may be NULL. */
static void gpt3__matmul_backward_reference(float *dinp, float *dweight, float *dbias,
                                            const float *dout, const float *inp,
                                            const float *weight, int B, int T, int C, int OC) {
    /* dinp (B,T,C) +=, dweight (OC,C) +=, dbias (OC) +=, dout (B,T,OC), inp (B,T,C),
       weight (OC,C) */
    int N = B * T;
    #pragma omp parallel for
    for (int n = 0; n < N; n++)
        for (int o = 0; dinp && o < OC; o++)
            for (int i = 0; i < C; i++)
                dinp[(size_t)n * C + i] += dout[(size_t)n * OC + o] * weight[(size_t)o * C + i];
    #pragma omp parallel for
    for (int o = 0; o < OC; o++)
        for (int n = 0; n < N; n++) {
            float d = dout[(size_t)n * OC + o];
            if (dbias) dbias[o] += d;
            for (int i = 0; dweight && i < C; i++) dweight[(size_t)o * C + i] += d * inp[(size_t)n * C + i];
        }
}

/* The model calls the fast versions, in the last section ("Fast kernels":
   the same products packed and blocked for the caches), which the tests
   hold to the reference above. */
static void gpt3__matmul_forward(float *out, const float *inp, const float *weight,
                                 const float *bias, int B, int T, int C, int OC,
                                 const GPT3Scratch *scratch);
static void gpt3__matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int B, int T, int C,
                                  int OC, const GPT3Scratch *scratch);
/* out (N,OC) += inp (N,C) W^T: the forward's product, added to out. */
static void gpt3__matmul_forward_add(float *out, const float *inp, const float *weight, int N,
                                     int C, int OC, const GPT3Scratch *scratch);
static size_t gpt3__matmul_scratch_floats(void);

/* ---- Dropout ---------------------------------------------------------------
   While training, each value is kept with probability 1 - p and scaled up so
   that its expectation is unchanged (off at evaluation):
       y_i = x_i k_i,   k_i = 1/(1 - p) with probability 1 - p, else 0,
   and so dLoss/dx_i = k_i dLoss/dy_i. The mask is never stored: k_i is a hash of
   (seed, site, i), recomputed by the backward pass, the same whatever thread
   asks. A site is one place in the network (the embedding, a layer's
   attention probabilities, a residual branch).                            */
typedef struct { uint64_t seed; float p; } GPT3__Dropout; /* p = 0: off */

static float gpt3__dropout_scale(const GPT3__Dropout *d, uint64_t site, uint64_t i) {
    if (!d || d->p <= 0.0f) return 1.0f;
    uint64_t h = gpt3__mix64(gpt3__mix64(d->seed ^ (site * 0xD1B54A32D192ED03ULL)) + i * GPT3__GOLDEN);
    float u = (float)(h >> 40) / 16777216.0f; /* uniform in [0, 1) */
    return u < d->p ? 0.0f : 1.0f / (1.0f - d->p);
}

/* In place: x = dropout(x); the backward pass is the same call on dLoss/dx. */
static void gpt3__dropout_apply(float *x, size_t n, const GPT3__Dropout *d, uint64_t site) {
    if (!d || d->p <= 0.0f) return;
    #pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] *= gpt3__dropout_scale(d, site, i);
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
static int gpt3__attention_span(int window, int T) { return window < T ? window : T; }
static int gpt3__attention_start(int window, int t) {
    return t - window + 1 > 0 ? t - window + 1 : 0;
}

/* The reference kernels, one query row at a time (the KV cache's too).
   Scores q . k_s for the n positions start .. start+n-1; position s lives
   in row s % rows of keys (rows stride floats apart). */
static void gpt3__attention_scores(float *scores, const float *q, const float *keys, size_t stride,
                                   int start, int n, int rows, int hs) {
    for (int j = 0; j < n; j++)
        scores[j] = gpt3__dot(q, keys + (size_t)((start + j) % rows) * stride, hs);
}

/* att = softmax(scale * scores) over a row of n (att may be scores). The
   maximum and the sum run over 16 lanes, so that they vectorise. */
static void gpt3__attention_softmax(float *att, const float *scores, int n, float scale) {
    for (int j = 0; j < n; j++) att[j] = scores[j] * scale;
    float maxval = gpt3__max_value(att, n), sum;
    for (int j = 0; j < n; j++) att[j] = gpt3__exp_negative(att[j] - maxval);
    sum = gpt3__sum(att, n);
    for (int j = 0; j < n; j++) att[j] /= sum;
}

/* out = sum_j w_j k_j x_{start+j} over n positions (rows as in the scores),
   k_j the dropout scale of probability number drop_index + start + j (1
   without dropout). 64 outputs at a time stay in registers. */
static void gpt3__attention_mix(float *out, const float *w, const float *x, size_t stride, int start,
                                int n, int rows, int hs, const GPT3__Dropout *drop, uint64_t site,
                                uint64_t drop_index) {
    for (int i0 = 0; i0 < hs; i0 += 64) {
        float acc[64] = {0};
        int width = gpt3__min(64, hs - i0), row = start % rows;
        for (int j = 0; j < n; j++, row = row + 1 == rows ? 0 : row + 1) {
            const float *v = x + (size_t)row * stride + i0;
            float a = w[j] * gpt3__dropout_scale(drop, site, drop_index + (uint64_t)(start + j));
            if (width == 64)
                for (int i = 0; i < 64; i++) acc[i] += a * v[i];
            else
                for (int i = 0; i < width; i++) acc[i] += a * v[i];
        }
        memcpy(out + i0, acc, (size_t)width * sizeof(float));
    }
}

/* One query row of one head: positions start .. start+n-1, where position
   s lives in row s % rows of keys and values (rows apart by stride floats;
   the KV cache keeps a banded layer's keys in a ring of W rows). Writes
   att[0..n) and out[0..hs). With dropout, out uses att[j] k_j, where k_j is
   the dropout scale of the probability numbered drop_index + start + j. */
static void gpt3__attention_row(float *out, float *att, const float *q, const float *keys,
                                const float *values, size_t stride, int start, int n,
                                int rows, int hs, const GPT3__Dropout *drop, uint64_t site,
                                uint64_t drop_index) {
    gpt3__attention_scores(att, q, keys, stride, start, n, rows, hs);
    gpt3__attention_softmax(att, att, n, 1.0f / sqrtf((float)hs));
    gpt3__attention_mix(out, att, values, stride, start, n, rows, hs, drop, site, drop_index);
}

/* The number of the probability (b, h, t, s = 0) among a layer's, for dropout. */
static uint64_t gpt3__attention_drop_index(int b, int h, int t, int NH, int T) {
    return (((uint64_t)b * NH + h) * T + t) * T;
}

/* The reference forward: one query row t at a time (gpt3__attention_row),
   each (b, h) a head of its own; the threads split the heads. */
static void gpt3__attention_forward_reference(float *out, float *att, const float *qkv, int B,
                                              int T, int C, int NH, int window,
                                              const GPT3__Dropout *drop, uint64_t site,
                                              int threads) {
    /* out (B,T,C), att (B,NH,T,span), qkv (B,T,3C) */
    int hs = C / NH, span = gpt3__attention_span(window, T);
    (void)threads; /* without OpenMP */
    #pragma omp parallel for collapse(2) num_threads(threads)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *seq = qkv + (size_t)b * T * 3 * C + h * hs;
            float *head_att = att + ((size_t)b * NH + h) * T * span;
            float *head_out = out + (size_t)b * T * C + h * hs;
            for (int t = 0; t < T; t++) {
                float *a = head_att + (size_t)t * span;
                int start = gpt3__attention_start(window, t), n = t - start + 1;
                gpt3__attention_row(head_out + (size_t)t * C, a, seq + (size_t)t * 3 * C, seq + C,
                                    seq + 2 * C, 3 * (size_t)C, start, n, T, hs, drop, site,
                                    gpt3__attention_drop_index(b, h, t, NH, T));
                for (int j = n; j < span; j++) a[j] = 0.0f;
            }
        }
    }
}

/* Backward, for one head, from dout_t = dLoss/dout_t:
       dLoss/dv_s       = sum_t att[t,s] dout_t
       dLoss/datt[t,s]  = dout_t . v_s
   the softmax Jacobian d att[t,s] / d score[t,s'] = att[t,s](1[s=s'] - att[t,s']):
       dLoss/dscore[t,s] = att[t,s] ( dLoss/datt[t,s] - sum_{s'} att[t,s'] dLoss/datt[t,s'] )
   and the scaled dot product:
       dLoss/dq_t = sum_s dLoss/dscore[t,s] k_s / sqrt(hs)
       dLoss/dk_s = sum_t dLoss/dscore[t,s] q_t / sqrt(hs).
   With dropout the output used att[t,s] k_ts, so dv_s gets att k and
   dLoss/datt[t,s] = k_ts dout_t . v_s. Split over (b, h), as the forward: a
   head's slice of dqkv is written by one thread only. */

/* One row t of the softmax's backward: on entry da[j] = dout_t . v_s, on
   return dLoss/dscore (times 1/sqrt(hs)); probs[j] = att k_ts for dv, unless
   probs is NULL. The sum over s' runs in 16 lanes (gpt3__dot), so that it
   vectorises: one running sum would wait on each add in turn. */
static void gpt3__attention_softmax_backward(float *da, float *probs, const float *a, int n,
                                             float scale, const GPT3__Dropout *drop, uint64_t site,
                                             uint64_t index) {
    if (drop && drop->p > 0.0f) {
        for (int j = 0; j < n; j++) {
            float keep = gpt3__dropout_scale(drop, site, index + (uint64_t)j);
            da[j] *= keep;
            if (probs) probs[j] = a[j] * keep;
        }
    } else if (probs) {
        memcpy(probs, a, (size_t)n * sizeof(float));
    }
    float att_dot_datt = gpt3__dot(a, da, n);
    for (int j = 0; j < n; j++) da[j] = a[j] * (da[j] - att_dot_datt) * scale;
}

/* The reference backward, one row t at a time; datt is scratch of att's
   shape (it ends holding dLoss/dscore). */
static void gpt3__attention_backward_reference(float *dqkv, float *datt, const float *dout,
                                               const float *qkv, const float *att, int B, int T,
                                               int C, int NH, int window,
                                               const GPT3__Dropout *drop, uint64_t site,
                                               int threads) {
    /* dqkv (B,T,3C) +=, datt (B,NH,T,span) scratch, dout (B,T,C), qkv (B,T,3C),
       att (B,NH,T,span) */
    int hs = C / NH, span = gpt3__attention_span(window, T);
    float scale = 1.0f / sqrtf((float)hs);
    (void)threads; /* without OpenMP */
    #pragma omp parallel for collapse(2) num_threads(threads)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *seq = qkv + (size_t)b * T * 3 * C + h * hs;
            const float *head_att = att + ((size_t)b * NH + h) * T * span;
            const float *head_dout = dout + (size_t)b * T * C + h * hs;
            float *dseq = dqkv + (size_t)b * T * 3 * C + h * hs;
            float *head_datt = datt + ((size_t)b * NH + h) * T * span, dq_sum[64];
            for (int t = 0; t < T; t++) { /* the reference: one row t at a time */
                const float *a = head_att + (size_t)t * span;
                float *da = head_datt + (size_t)t * span;
                const float *d_o = head_dout + (size_t)t * C, *q = seq + (size_t)t * 3 * C;
                float *dq = dseq + (size_t)t * 3 * C;
                int start = gpt3__attention_start(window, t), n = t - start + 1;
                uint64_t index = gpt3__attention_drop_index(b, h, t, NH, T) + (uint64_t)start;
                gpt3__attention_scores(da, d_o, seq + 2 * C, 3 * (size_t)C, start, n, T, hs);
                for (int j = 0; j < n; j++) { /* dv_s += att k_ts dout_t */
                    float *dv = dseq + (size_t)(start + j) * 3 * C + 2 * C;
                    float p = a[j] * gpt3__dropout_scale(drop, site, index + (uint64_t)j);
                    for (int i = 0; i < hs; i++) dv[i] += p * d_o[i];
                }
                gpt3__attention_softmax_backward(da, NULL, a, n, scale, drop, site, index);
                for (int j = 0; j < n; j++) { /* dk_s += dscore q_t */
                    float *dk = dseq + (size_t)(start + j) * 3 * C + C;
                    for (int i = 0; i < hs; i++) dk[i] += da[j] * q[i];
                }
                for (int i0 = 0; i0 < hs; i0 += 64) { /* dq_t += sum_s dscore k_s */
                    int width = gpt3__min(64, hs - i0);
                    gpt3__attention_mix(dq_sum, da, seq + C + i0, 3 * (size_t)C, start, n, T, width,
                                        NULL, 0, 0);
                    for (int i = 0; i < width; i++) dq[i0 + i] += dq_sum[i];
                }
            }
        }
    }
}

/* The model calls the fast versions, in the last section (blocks of
   queries as packed matrix products), which the tests hold to the
   reference above; without room for the blocks they run the reference. */
static void gpt3__attention_forward(float *out, float *att, const float *qkv, int B, int T,
                                    int C, int NH, int window, const GPT3__Dropout *drop,
                                    uint64_t site, const GPT3Scratch *scratch);
static void gpt3__attention_backward(float *dqkv, float *datt, const float *dout,
                                     const float *qkv, const float *att, int B, int T, int C,
                                     int NH, int window, const GPT3__Dropout *drop, uint64_t site,
                                     const GPT3Scratch *scratch);
static size_t gpt3__attention_scratch_floats(int T);

/* ---- GELU (tanh approximation) -------------------------------------------
   y = 0.5 x (1 + tanh u),   u = sqrt(2/pi) (x + 0.044715 x^3)             */
#define GPT3__GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */

/* tanh u = sign(u) (1 - e^-2|u|) / (1 + e^-2|u|): exactly +-1 far out,
   absolute error about 1e-7 near 0, far below what GELU's 0.5 x (1 + tanh u)
   can show. */
static float gpt3__tanh(float u) {
    float e = gpt3__exp_negative(2.0f * u);
    return copysignf((1.0f - e) / (1.0f + e), u);
}

static void gpt3__gelu_forward(float *out, const float *inp, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GPT3__GELU_SCALE * (x + 0.044715f * x * x * x);
        out[i] = 0.5f * x * (1.0f + gpt3__tanh(u));
    }
}

/* dy/dx = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx,
   du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2);   dLoss/dx = dy/dx dLoss/dy.
   In place is allowed (dinp == dout).                                     */
static void gpt3__gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    /* dinp (N) written (it may be dout), inp (N) the forward's input */
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GPT3__GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = gpt3__tanh(u);
        float du = GPT3__GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
        dinp[i] = grad * dout[i];
    }
}

/* ---- Residual connection -------------------------------------------------
   out = x + f(x). Its backward is the identity for both branches:
   dLoss/dx += dLoss/dout and dLoss/df += dLoss/dout. gpt3_backward therefore carries
   one buffer, dresidual, down the whole residual stream.                  */
static void gpt3__residual_forward(float *out, const float *inp1, const float *inp2, size_t N) {
    #pragma omp parallel for
    for (size_t i = 0; i < N; i++) out[i] = inp1[i] + inp2[i];
}

/* ---- LoRA: a low-rank update of a frozen matrix (Hu et al. 2021) ----------
   W' = W + s B A with A (r, in), B (out, r), s = alpha / r, so a Linear
   layer becomes
       y = x W^T + b + s (x A^T) B^T.
   With u = s x A^T (N, r), kept for the backward pass, y += u B^T, and
       dLoss/dB = dy^T u,   dLoss/du = dy B,   dLoss/dA = s (dLoss/du)^T x,
       dLoss/dx += s (dLoss/du) A.
   B starts at zero, so a new adapter leaves the model as it was.          */
static void gpt3__lora_forward(float *out, float *u, const float *inp, const float *A,
                               const float *Bm, float s, int N, int in, int outdim, int r,
                               const GPT3Scratch *scratch) {
    /* out (N,out) +=, u (N,r) kept, inp (N,in), A (r,in), Bm (out,r) */
    gpt3__matmul_forward(u, inp, A, NULL, 1, N, in, r, scratch);
    for (size_t i = 0; i < (size_t)N * r; i++) u[i] *= s;
    gpt3__matmul_forward_add(out, u, Bm, N, r, outdim, scratch);
}

static void gpt3__lora_backward(float *dinp, float *dA, float *dB, float *du, const float *dout,
                                const float *inp, const float *u, const float *A, const float *Bm,
                                float s, int N, int in, int outdim, int r,
                                const GPT3Scratch *scratch) {
    /* dinp (N,in) +=, dA (r,in) +=, dB (out,r) +=, du (N,r) scratch, dout (N,out),
       inp (N,in), u (N,r) from the forward, A (r,in), Bm (out,r) */
    memset(du, 0, (size_t)N * r * sizeof(float));
    /* du = dy B, dB += dy^T u */
    gpt3__matmul_backward(du, dB, NULL, dout, u, Bm, 1, N, r, outdim, scratch);
    for (size_t i = 0; i < (size_t)N * r; i++) du[i] *= s;
    /* dx += du A, dA += du^T x */
    gpt3__matmul_backward(dinp, dA, NULL, du, inp, A, 1, N, in, r, scratch);
}

/* ======================================================================== */
/* Loss heads: cross-entropy, binary cross-entropy, distillation            */
/* ======================================================================== */

/* sum_v e^(z_v - max), in double, over 8 lanes so that it vectorises. */
static double gpt3__sum_exp(const float *z, float maxval, int V) {
    double lane[8] = {0};
    int v = 0;
    for (; v + 8 <= V; v += 8)
        for (int k = 0; k < 8; k++) lane[k] += gpt3__exp_negative(z[v + k] - maxval);
    for (; v < V; v++) lane[v % 8] += gpt3__exp_negative(z[v] - maxval);
    return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

/* For one position with logits z (V) and target y:
       p_v = exp(z_v - lse),   lse = log sum_v exp(z_v)
       l   = -log p_y = lse - z_y = log sum_v exp(z_v - max) - (z_y - max).
   The last form is the one computed (in double, then rounded): lse - z_y
   in float would lose every digit of a loss below the rounding step of
   lse, about 1e-6 for logits near 10, and a well-fitted position has one.
   The empirical risk over the N positions whose target is >= 0:
       Loss = (1/N) sum_n l_n.
   Returns N; lse is kept so the backward pass can form p without a
   second (B, T, V) buffer of probabilities.                               */
static int gpt3__crossentropy_forward(float *losses, float *lse, const float *logits,
                                      const int *targets, int B, int T, int V) {
    /* losses, lse (B,T), logits (B,T,V), targets (B,T) or NULL */
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *z = logits + (size_t)bt * V;
        float maxval = gpt3__max_value(z, V);
        double log_sum = log(gpt3__sum_exp(z, maxval, V));
        lse[bt] = maxval + (float)log_sum;
        losses[bt] = (targets && targets[bt] >= 0)
                         ? (float)(log_sum - ((double)z[targets[bt]] - maxval)) : 0.0f;
    }
    int count = 0;
    for (int bt = 0; targets && bt < B * T; bt++) count += targets[bt] >= 0;
    return count;
}

/* dl/dz_v = p_v - 1[v = y]   (the softmax and the log cancel), so
       dLoss/dz[n,v] = (p[n,v] - 1[v = y_n]) / N,
   and 0 for ignored positions; all of it times scale (the weight of this
   loss in a mixture, 1 alone). At v = y, p_y - 1 = e^(-l) - 1 is formed
   as expm1(-l) from the loss: p_y rounded to float and then less 1 would
   be 0 for every loss below 6e-8, where the gradient is -l.               */
static void gpt3__crossentropy_backward(float *dlogits, const float *logits,
                                        const float *lse, const float *losses,
                                        const int *targets, int count, int B, int T, int V,
                                        float scale) {
    /* dlogits (B,T,V) +=, logits (B,T,V), lse, losses (B,T), targets (B,T) */
    float inv_n = count > 0 ? scale / (float)count : 0.0f;
    #pragma omp parallel for
    for (int bt = 0; bt < B * T; bt++) {
        const float *z = logits + (size_t)bt * V;
        float *dz = dlogits + (size_t)bt * V;
        int y = targets[bt];
        if (y < 0) continue;
        for (int v = 0; v < V; v++) {
            if (v == y) continue;
            dz[v] += gpt3__exp_negative(z[v] - lse[bt]) * inv_n;
        }
        dz[y] += expm1f(-losses[bt]) * inv_n;
    }
}

/* ---- Binary cross-entropy (Section 4) -----------------------------------
   One logit z per example, yhat = sigma(z) = 1 / (1 + e^-z), label y in {0, 1}:
       l = -[ y log yhat + (1 - y) log(1 - yhat) ].
   Since log yhat = -log(1 + e^-z) and log(1 - yhat) = -z - log(1 + e^-z),
       l = (1 - y) z + log(1 + e^-z) = max(z, 0) - y z + log(1 + e^-|z|),
   the last form never overflows. By the chain rule, with
   d yhat / dz = yhat (1 - yhat):
       dl/dz = -[ y / yhat - (1 - y) / (1 - yhat) ] yhat (1 - yhat) = yhat - y,
   and over the empirical risk Loss = (1/N) sum_i l_i, dLoss/dz_i = (yhat_i - y_i) / N. */
static float gpt3__bce_forward(float z, int y) {
    return fmaxf(z, 0.0f) - (float)y * z + log1pf(expf(-fabsf(z)));
}

static float gpt3__sigmoid(float z) {
    return z >= 0 ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
}

static float gpt3__bce_backward(float z, int y, float inv_n) {
    return (gpt3__sigmoid(z) - (float)y) * inv_n;
}

/* ---- Knowledge distillation (Hinton et al. 2015) --------------------------
   The student learns the teacher's distribution softened by a temperature
   tau: with p = softmax(t / tau) (teacher logits t) and q = softmax(z / tau)
   (student logits z),
       l_KD = tau^2 KL(p || q) = tau^2 sum_k p_k (log p_k - log q_k),
       dl_KD/dz_k = tau^2 (q_k - p_k) / tau = tau (q_k - p_k)
   (the tau^2 keeps the gradient's size independent of tau). The loss mixes
   it with the hard labels' loss: Loss = (1 - alpha) Loss_hard + alpha l_KD. A
   binary head is the case K = 2 with logits (0, z).                       */
/* log sum_k exp(z_k / tau) */
static double gpt3__logsumexp(const float *z, int K, float tau) {
    float maxval = -FLT_MAX;
    double sum = 0.0;
    for (int k = 0; k < K; k++) if (z[k] > maxval) maxval = z[k];
    for (int k = 0; k < K; k++) sum += exp((double)(z[k] - maxval) / tau);
    return maxval / tau + log(sum);
}

/* One row: returns l_KD; if dz, adds scale * dl_KD/dz to it. */
static float gpt3__distill_row(float *dz, const float *z, const float *t, int K, float tau,
                               float scale) {
    double lse_t = gpt3__logsumexp(t, K, tau), lse_z = gpt3__logsumexp(z, K, tau), kl = 0.0;
    for (int k = 0; k < K; k++) {
        double log_p = t[k] / tau - lse_t, log_q = z[k] / tau - lse_z;
        double p = exp(log_p), q = exp(log_q);
        kl += p * (log_p - log_q);
        if (dz) dz[k] += (float)(scale * tau * (q - p));
    }
    return (float)(tau * tau * kl);
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
   else T, which lets every position see all of its past (dense causal).
   A window of T or more is T: such a banded layer is the dense one, and
   no arithmetic on a window (up to INT_MAX in a config) can overflow. */
static int gpt3__layer_window(const GPT3Config *cfg, int l, int T) {
    int banded = cfg->local_window > 0 && l % 2 == 1;
    return banded && cfg->local_window < T ? cfg->local_window : T;
}

/* Floats of att before layer l's probabilities, when (B, T) are in use. */
static size_t gpt3__att_offset(const GPT3Config *cfg, int l, int B, int T) {
    size_t offset = 0;
    for (int j = 0; j < l; j++)
        offset += (size_t)B * cfg->num_heads * T *
                  gpt3__attention_span(gpt3__layer_window(cfg, j, T), T);
    return offset;
}

#define GPT3__NUM_ACTIVATIONS 30

static void gpt3__activation_views(GPT3Activations *a,
                                   float **views[GPT3__NUM_ACTIVATIONS]) {
    float **v[GPT3__NUM_ACTIVATIONS] = {
        &a->encoded, &a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att,
        &a->atty, &a->attproj, &a->residual2, &a->ln2, &a->ln2_mean,
        &a->ln2_rstd, &a->fch, &a->fch_gelu, &a->fcproj, &a->residual3,
        &a->lnf, &a->lnf_mean, &a->lnf_rstd, &a->logits, &a->lse, &a->losses,
        &a->dresidual, &a->dbranch, &a->dln, &a->datty, &a->dqkv, &a->datt, &a->dfch,
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
        BT * C, BT * C, BT * C, BT * C, BT * 3 * C, datt, BT * 4 * C,
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
    size_t scratch = (size_t)gpt3__max_threads() * gpt3__attention_scratch_floats(T);
    return (params + acts + scratch) * sizeof(float) + 2 * (size_t)B * T * sizeof(int);
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
    m->scratch.threads = gpt3__max_threads();
    m->scratch.floats_per_thread = gpt3__matmul_scratch_floats(); /* attention's grows with T */
    m->scratch.memory = (float *)GPT3_MALLOC((size_t)m->scratch.threads *
                                             m->scratch.floats_per_thread * sizeof(float));
    if (!m->params || !m->grads || !m->scratch.memory) {
        gpt3_free(m);
        return GPT3_ERR_NOMEM;
    }
    gpt3__point_tensors(&m->w, m->params, m->tensor_sizes);
    gpt3__point_tensors(&m->dw, m->grads, m->tensor_sizes);
    m->adam_count = m->num_parameters;
    m->mean_loss = -1.0f;
    return GPT3_OK;
}

GPT3DEF int gpt3_init(GPT3 *m, const GPT3Config *cfg, uint64_t seed) {
    if (m) memset(m, 0, sizeof(*m));
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

/* The four matrices of a block, in the order LoRA keeps its adapters. */
enum { GPT3__QKV, GPT3__ATTPROJ, GPT3__FC, GPT3__FCPROJ };

/* Layer l's adapter for matrix k: A (r, in), B (out, r), and their gradients. */
static void gpt3__lora_views(const GPT3LoRA *lora, int l, int k, int C, float **A, float **Bm,
                             float **dA, float **dB) {
    static const int in_c[4] = {1, 1, 1, 4}, out_c[4] = {3, 1, 4, 1};
    size_t r = (size_t)lora->rank, c = (size_t)C, offset = (size_t)l * 16 * r * c;
    for (int j = 0; j < k; j++) offset += r * c * (size_t)(in_c[j] + out_c[j]);
    *A = lora->params + offset;
    *Bm = *A + r * c * (size_t)in_c[k];
    *dA = lora->grads + offset;
    *dB = *dA + r * c * (size_t)in_c[k];
}

/* u of layer l, matrix k for (B, T): (B*T, r). */
static float *gpt3__lora_u(const GPT3 *m, int l, int k, int B, int T) {
    return m->lora->u + ((size_t)l * 4 + (size_t)k) * (size_t)B * T * m->lora->rank;
}

/* y = x W^T + b for N rows, and the adapter's s (x A^T) B^T when LoRA is
   on, its u (N, r) left in u. */
static void gpt3__linear_rows(GPT3 *m, int l, int k, float *out, float *u, const float *inp,
                              const float *w, const float *b, int N, int in, int outdim) {
    gpt3__matmul_forward(out, inp, w, b, 1, N, in, outdim, &m->scratch);
    if (!m->lora) return;
    float *A, *Bm, *dA, *dB, s = m->lora->alpha / (float)m->lora->rank;
    gpt3__lora_views(m->lora, l, k, m->config.channels, &A, &Bm, &dA, &dB);
    gpt3__lora_forward(out, u, inp, A, Bm, s, N, in, outdim, m->lora->rank, &m->scratch);
}

/* The forward's: u kept for the backward pass. */
static void gpt3__linear_forward(GPT3 *m, int l, int k, float *out, const float *inp,
                                 const float *w, const float *b, int B, int T, int in, int outdim) {
    float *u = m->lora ? gpt3__lora_u(m, l, k, B, T) : NULL;
    gpt3__linear_rows(m, l, k, out, u, inp, w, b, B * T, in, outdim);
}

static void gpt3__linear_backward(GPT3 *m, int l, int k, float *dinp, float *dw, float *db,
                                  const float *dout, const float *inp, const float *w,
                                  int B, int T, int in, int outdim) {
    gpt3__matmul_backward(dinp, dw, db, dout, inp, w, B, T, in, outdim, &m->scratch);
    if (!m->lora) return;
    float *A, *Bm, *dA, *dB, s = m->lora->alpha / (float)m->lora->rank;
    gpt3__lora_views(m->lora, l, k, m->config.channels, &A, &Bm, &dA, &dB);
    gpt3__lora_backward(dinp, dA, dB, m->lora->du, dout, inp, gpt3__lora_u(m, l, k, B, T), A, Bm, s,
                        B * T, in, outdim, m->lora->rank, &m->scratch);
}

static GPT3__Dropout gpt3__dropout_of(const GPT3 *m) {
    GPT3__Dropout d;
    d.seed = m->dropout_seed;
    d.p = m->training ? m->dropout : 0.0f;
    return d;
}

/* Dropout sites: 0 the embeddings; per layer, its attention probabilities
   and its two residual branches. */
static uint64_t gpt3__site(int l, int which) { return 1 + 3 * (uint64_t)l + (uint64_t)which; }

/* Room for the adapters' u at (B, T). */
static int gpt3__reserve_lora(GPT3 *m, int B, int T) {
    GPT3LoRA *lora = m->lora;
    size_t need = (size_t)m->config.num_layers * 4 * B * T * lora->rank;
    if (need <= lora->u_capacity) return GPT3_OK;
    GPT3_FREE(lora->u);
    GPT3_FREE(lora->du);
    lora->u = (float *)GPT3_MALLOC(need * sizeof(float));
    lora->du = (float *)GPT3_MALLOC((size_t)B * T * lora->rank * sizeof(float));
    lora->u_capacity = lora->u && lora->du ? need : 0;
    return lora->u_capacity ? GPT3_OK : GPT3_ERR_NOMEM;
}

/* Room in each thread's scratch for the attention at length T (the
   matmul's panels are there from the start). */
static int gpt3__reserve_scratch(GPT3Scratch *s, int T) {
    size_t need = gpt3__attention_scratch_floats(T);
    if (need <= s->floats_per_thread) return GPT3_OK;
    float *grown = (float *)GPT3_MALLOC((size_t)s->threads * need * sizeof(float));
    if (!grown) return GPT3_ERR_NOMEM;
    GPT3_FREE(s->memory);
    s->memory = grown;
    s->floats_per_thread = need;
    return GPT3_OK;
}

/* The soft prompt's vectors: positions before the tokens. */
static int gpt3__prompt_length(const GPT3 *m) { return m->prompt ? m->prompt->length : 0; }

/* Validate, make room, keep the tokens: the start of every forward. The
   body runs on S = N + T positions (N: the soft prompt's), the LM and task
   heads on the T of the tokens. */
static int gpt3__begin_forward(GPT3 *m, const int *inputs, const int *targets, int B, int T) {
    int rc = gpt3__check_batch(m, inputs, targets, B, T);
    int S = rc == GPT3_OK ? T + gpt3__prompt_length(m) : 0;
    if (rc == GPT3_OK && S > m->config.max_seq_len) rc = GPT3_ERR_SEQ_LEN;
    if (rc == GPT3_OK && !gpt3__batch_fits(&m->config, B, S)) rc = GPT3_ERR_NOMEM;
    if (rc != GPT3_OK) return rc;
    m->has_targets = 0;
    if (m->head) m->head->has_labels = 0;
    rc = gpt3__reserve_scratch(&m->scratch, S);
    if (rc == GPT3_OK) rc = gpt3__reserve_activations(m, B, S);
    if (rc == GPT3_OK && m->lora) rc = gpt3__reserve_lora(m, B, S);
    if (rc != GPT3_OK) return rc;
    memcpy(m->inputs, inputs, (size_t)B * T * sizeof(int));
    m->B = B;
    m->T = T;
    if (m->training) m->dropout_seed = gpt3__mix64(m->dropout_seed + 1);
    return GPT3_OK;
}

/* The body of the forward pass, as in Section 2.1 of the paper (GPT-2's
   pre-LN block), up to the final hidden states a->lnf (B, T, C):
       x_0   = wte[tokens] + wpe[positions]      (+ r: adversarial training)
       x'_l  = x_l  + attention_l(LayerNorm1_l(x_l))          l = 0 .. L-1
       x_l+1 = x'_l + fcproj_l(GELU(fc_l(LayerNorm2_l(x'_l))))
       h     = LayerNormF(x_L)
   With dropout on, it acts on the embeddings, the attention probabilities
   and each branch before it joins the residual stream. With a soft prompt
   the blocks run on its N positions and the T tokens' (T below is N + T),
   and h keeps the tokens' rows only. */
static void gpt3__forward_body(GPT3 *m) {
    const GPT3Config *cfg = &m->config;
    int N = gpt3__prompt_length(m), B = m->B, T = N + m->T, C = cfg->channels;
    int L = cfg->num_layers, NH = cfg->num_heads;
    size_t btc = (size_t)B * T * C;
    GPT3Activations *a = &m->acts;
    GPT3__Dropout drop = gpt3__dropout_of(m);
    gpt3__encoder_forward(a->encoded, m->inputs, m->w.wte, m->w.wpe, N ? m->prompt->params : NULL, N,
                          B, m->T, C);
    if (m->adversary.active) gpt3__residual_forward(a->encoded, a->encoded, m->adversary.delta, btc);
    gpt3__dropout_apply(a->encoded, btc, &drop, 0);
    for (int l = 0; l < L; l++) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        GPT3Activations la = gpt3__layer_acts(a, cfg, l, B, T);
        const float *x = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * btc;
        gpt3__layernorm_forward(la.ln1, la.ln1_mean, la.ln1_rstd, x, lw.ln1w, lw.ln1b, B, T, C);
        gpt3__linear_forward(m, l, GPT3__QKV, la.qkv, la.ln1, lw.qkvw, lw.qkvb, B, T, C, 3 * C);
        gpt3__attention_forward(la.atty, la.att, la.qkv, B, T, C, NH, gpt3__layer_window(cfg, l, T),
                                &drop, gpt3__site(l, 0), &m->scratch);
        gpt3__linear_forward(m, l, GPT3__ATTPROJ, la.attproj, la.atty, lw.attprojw, lw.attprojb,
                             B, T, C, C);
        gpt3__dropout_apply(la.attproj, btc, &drop, gpt3__site(l, 1));
        gpt3__residual_forward(la.residual2, x, la.attproj, btc);
        gpt3__layernorm_forward(la.ln2, la.ln2_mean, la.ln2_rstd, la.residual2, lw.ln2w, lw.ln2b, B,
                                T, C);
        gpt3__linear_forward(m, l, GPT3__FC, la.fch, la.ln2, lw.fcw, lw.fcb, B, T, C, 4 * C);
        gpt3__gelu_forward(la.fch_gelu, la.fch, 4 * btc);
        gpt3__linear_forward(m, l, GPT3__FCPROJ, la.fcproj, la.fch_gelu, lw.fcprojw, lw.fcprojb,
                             B, T, 4 * C, C);
        gpt3__dropout_apply(la.fcproj, btc, &drop, gpt3__site(l, 2));
        gpt3__residual_forward(la.residual3, la.residual2, la.fcproj, btc);
    }
    gpt3__layernorm_forward(a->lnf, a->lnf_mean, a->lnf_rstd, a->residual3 + (size_t)(L - 1) * btc,
                            m->w.lnfw, m->w.lnfb, B, T, C);
    for (int b = 0; N && b < B; b++) /* (B, N+T, C) -> (B, T, C): rows only move down */
        memmove(a->lnf + (size_t)b * m->T * C, a->lnf + ((size_t)b * T + N) * C,
                (size_t)m->T * C * sizeof(float));
}

/* dLoss/dh (B, T, C) in a->dln, spread to the body's (B, N+T, C) rows: the
   prompt's rows of h were dropped, so their gradient is 0. */
static void gpt3__spread_prompt_rows(GPT3 *m) {
    int N = gpt3__prompt_length(m), T = m->T, C = m->config.channels;
    for (int b = m->B - 1; N && b >= 0; b--) { /* rows only move up: from the last */
        float *row = m->acts.dln + (size_t)b * (N + T) * C;
        memmove(row + (size_t)N * C, m->acts.dln + (size_t)b * T * C, (size_t)T * C * sizeof(float));
        memset(row, 0, (size_t)N * C * sizeof(float));
    }
}

/* Distillation on rows of logits (rows, K) against m->teacher_logits:
   returns alpha * sum of l_KD over the rows that count (targets[r] >= 0,
   or all rows if targets is NULL) and, if dz, adds alpha dl_KD/dz / N.
   The rows are summed in a fixed number of parts, whatever the threads,
   so that the sum is the same bits on any thread count. */
#define GPT3__SUM_PARTS 64
static double gpt3__distill(const GPT3 *m, float *dz, const float *z, const int *targets,
                            size_t rows, int K, float inv_n) {
    double part[GPT3__SUM_PARTS], sum = 0.0;
    float tau = m->distill_temperature, alpha = m->distill_alpha;
    #pragma omp parallel for schedule(static)
    for (int p = 0; p < GPT3__SUM_PARTS; p++) {
        part[p] = 0.0;
        for (size_t r = rows * p / GPT3__SUM_PARTS; r < rows * (p + 1) / GPT3__SUM_PARTS; r++) {
            if (targets && targets[r] < 0) continue;
            part[p] += gpt3__distill_row(dz ? dz + r * K : NULL, z + r * K, m->teacher_logits + r * K,
                                         K, tau, alpha * inv_n);
        }
    }
    for (int p = 0; p < GPT3__SUM_PARTS; p++) sum += part[p];
    return alpha * sum;
}

/* The LM head on the batch begun: logits = h wte^T (the tied output head),
   then the cross-entropy of the next token (and distillation, when asked)
   if there are targets. */
static void gpt3__lm_forward(GPT3 *m, int has_targets) {
    int B = m->B, T = m->T, V = m->config.vocab_size;
    GPT3Activations *a = &m->acts;
    gpt3__forward_body(m);
    gpt3__matmul_forward(a->logits, a->lnf, m->w.wte, NULL, B, T, m->config.channels, V,
                         &m->scratch);
    m->logits = a->logits;
    int count = gpt3__crossentropy_forward(a->losses, a->lse, a->logits,
                                           has_targets ? m->targets : NULL, B, T, V);
    m->mean_loss = -1.0f;
    if (!has_targets) return;
    double sum = 0.0, kd = 0.0;
    for (size_t i = 0; i < (size_t)B * T; i++) sum += a->losses[i];
    if (m->teacher_logits && count > 0) {
        kd = gpt3__distill(m, NULL, a->logits, m->targets, (size_t)B * T, V, 0.0f);
        sum *= 1.0 - m->distill_alpha;
    }
    m->mean_loss = count > 0 ? (float)((sum + kd) / count) : 0.0f;
    m->has_targets = 1;
}

GPT3DEF int gpt3_forward(GPT3 *m, const int *inputs, const int *targets, int B, int T) {
    int rc = gpt3__begin_forward(m, inputs, targets, B, T);
    if (rc != GPT3_OK) return rc;
    if (targets) memcpy(m->targets, targets, (size_t)B * T * sizeof(int));
    gpt3__lm_forward(m, targets != NULL);
    return GPT3_OK;
}

/* The gradients of everything that trains: the model, the adapters, the
   head, the soft prompt. */
#define GPT3__GRADIENT_PARTS 4
static void gpt3__gradient_parts(const GPT3 *m, float *parts[GPT3__GRADIENT_PARTS],
                                 size_t sizes[GPT3__GRADIENT_PARTS]) {
    parts[0] = m->grads;
    sizes[0] = m->grads ? m->num_parameters : 0;
    parts[1] = m->lora ? m->lora->grads : NULL;
    sizes[1] = m->lora ? m->lora->num_parameters : 0;
    parts[2] = m->head ? m->head->grads : NULL;
    sizes[2] = m->head ? (size_t)m->head->num_classes * (m->config.channels + 1) : 0;
    parts[3] = m->prompt ? m->prompt->grads : NULL;
    sizes[3] = m->prompt ? (size_t)m->prompt->length * m->config.channels : 0;
}

GPT3DEF void gpt3_zero_grad(GPT3 *m) {
    if (!m) return;
    float *parts[GPT3__GRADIENT_PARTS];
    size_t sizes[GPT3__GRADIENT_PARTS];
    gpt3__gradient_parts(m, parts, sizes);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        if (sizes[k]) gpt3__zero(parts[k], sizes[k]);
}

/* Does the backward need dLoss/dx_0, the gradient at the embeddings? The
   soft prompt's gradient and the adversary's direction are made of it. */
static int gpt3__wants_input_gradient(const GPT3 *m) {
    return m->prompt || (m->adversary.steps > 0 && m->adversary.epsilon > 0.0f);
}

/* The body's backward pass, from a->dln = dLoss/dh (B, T, C) down the
   stream. Each residual connection passes its gradient through unchanged,
   so one buffer, dresidual, carries dLoss/dx down and every branch adds its
   part; at the bottom it holds dLoss/dx_0 (B, N+T, C). Frozen parameters
   get no gradient, and the pass stops at the lowest block that trains (or
   that has an adapter), unless dLoss/dx_0 is wanted. */
static void gpt3__backward_body(GPT3 *m) {
    const GPT3Config *cfg = &m->config;
    int N = gpt3__prompt_length(m), B = m->B, T = N + m->T, C = cfg->channels;
    int L = cfg->num_layers, NH = cfg->num_heads;
    size_t btc = (size_t)B * T * C;
    GPT3Activations *a = &m->acts;
    GPT3__Dropout drop = gpt3__dropout_of(m);
    GPT3Tensors none;
    memset(&none, 0, sizeof(none));
    gpt3__spread_prompt_rows(m);
    gpt3__zero(a->dresidual, btc);
    gpt3__layernorm_backward(a->dresidual, m->frozen_final ? NULL : m->dw.lnfw, m->dw.lnfb, a->dln,
                             a->residual3 + (size_t)(L - 1) * btc, m->w.lnfw, a->lnf_mean,
                             a->lnf_rstd, B, T, C);
    int lowest = m->lora || gpt3__wants_input_gradient(m) ? 0 : m->frozen_layers;
    /* a branch's gradient before its dropout: dresidual itself when off */
    float *dbranch = drop.p > 0.0f ? a->dbranch : a->dresidual;
    for (int l = L - 1; l >= lowest; l--) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        GPT3Tensors ldw = l >= m->frozen_layers ? gpt3__layer_tensors(&m->dw, l, C) : none;
        GPT3Activations la = gpt3__layer_acts(a, cfg, l, B, T);
        const float *x = l == 0 ? a->encoded : a->residual3 + (size_t)(l - 1) * btc;
        gpt3__zero(a->dfch, 4 * btc);
        gpt3__zero(a->dln, btc);
        gpt3__zero(a->datty, btc);
        gpt3__zero(a->dqkv, 3 * btc);
        /* MLP branch: dLoss/dfcproj = dropout'(dresidual) */
        if (drop.p > 0.0f) memcpy(dbranch, a->dresidual, btc * sizeof(float));
        gpt3__dropout_apply(dbranch, btc, &drop, gpt3__site(l, 2));
        gpt3__linear_backward(m, l, GPT3__FCPROJ, a->dfch, ldw.fcprojw, ldw.fcprojb, dbranch,
                              la.fch_gelu, lw.fcprojw, B, T, 4 * C, C);
        gpt3__gelu_backward(a->dfch, la.fch, a->dfch, 4 * btc);
        gpt3__linear_backward(m, l, GPT3__FC, a->dln, ldw.fcw, ldw.fcb, a->dfch, la.ln2, lw.fcw,
                              B, T, C, 4 * C);
        gpt3__layernorm_backward(a->dresidual, ldw.ln2w, ldw.ln2b, a->dln, la.residual2, lw.ln2w,
                                 la.ln2_mean, la.ln2_rstd, B, T, C);
        /* attention branch: dLoss/dattproj = dropout'(dresidual) */
        gpt3__zero(a->dln, btc);
        if (drop.p > 0.0f) memcpy(dbranch, a->dresidual, btc * sizeof(float));
        gpt3__dropout_apply(dbranch, btc, &drop, gpt3__site(l, 1));
        gpt3__linear_backward(m, l, GPT3__ATTPROJ, a->datty, ldw.attprojw, ldw.attprojb, dbranch,
                              la.atty, lw.attprojw, B, T, C, C);
        gpt3__attention_backward(a->dqkv, a->datt, a->datty, la.qkv, la.att, B, T, C, NH,
                                 gpt3__layer_window(cfg, l, T), &drop, gpt3__site(l, 0),
                                 &m->scratch);
        gpt3__linear_backward(m, l, GPT3__QKV, a->dln, ldw.qkvw, ldw.qkvb, a->dqkv, la.ln1,
                              lw.qkvw, B, T, C, 3 * C);
        gpt3__layernorm_backward(a->dresidual, ldw.ln1w, ldw.ln1b, a->dln, x, lw.ln1w,
                                 la.ln1_mean, la.ln1_rstd, B, T, C);
    }
    if (lowest > 0) return; /* nothing below trains */
    gpt3__dropout_apply(a->dresidual, btc, &drop, 0); /* now dLoss/dx_0 */
    int frozen = m->frozen_layers > 0; /* the input embeddings freeze with the blocks */
    gpt3__encoder_backward(frozen ? NULL : m->dw.wte, frozen ? NULL : m->dw.wpe,
                           N ? m->prompt->grads : NULL, a->dresidual, m->inputs, N, B, m->T, C);
}

/* The LM head's backward: dLoss/dlogits from the cross-entropy (and the
   distillation term), through logits = h wte^T, then the body. */
static void gpt3__lm_backward(GPT3 *m) {
    int B = m->B, T = m->T, C = m->config.channels, V = m->config.vocab_size;
    size_t count = 0, rows = (size_t)B * T;
    GPT3Activations *a = &m->acts;
    for (size_t i = 0; i < rows; i++) count += m->targets[i] >= 0;
    float inv_n = count ? 1.0f / (float)count : 0.0f;
    gpt3__zero(a->dlogits, rows * V);
    gpt3__zero(a->dln, rows * C);
    if (m->teacher_logits) gpt3__distill(m, a->dlogits, a->logits, m->targets, rows, V, inv_n);
    gpt3__crossentropy_backward(a->dlogits, a->logits, a->lse, a->losses, m->targets, (int)count,
                                B, T, V, m->teacher_logits ? 1.0f - m->distill_alpha : 1.0f);
    gpt3__matmul_backward(a->dln, m->frozen_layers ? NULL : m->dw.wte, NULL, a->dlogits, a->lnf,
                          m->w.wte, B, T, C, V, &m->scratch);
    gpt3__backward_body(m);
}

static int gpt3__adversarial(GPT3 *m, int head);

GPT3DEF int gpt3_backward(GPT3 *m) {
    if (!m || !m->params) return GPT3_ERR_ARGUMENT;
    if (!m->has_targets) return GPT3_ERR_NO_TARGETS;
    gpt3__lm_backward(m);
    return gpt3__adversarial(m, 0);
}

/* ======================================================================== */
/* Optimizer: AdamW, gradient clipping, learning-rate schedule              */
/* ======================================================================== */

/* Section 4's update is plain gradient descent with weight decay,
       theta <- theta - eta dLoss/dtheta - eta lambda theta.
   AdamW (Loshchilov & Hutter; the optimizer of GPT-3) replaces the raw
   gradient g by a per-parameter normalised running average:
       m = beta1 m + (1 - beta1) g            (first moment)
       v = beta2 v + (1 - beta2) g^2          (second moment)
       mhat = m / (1 - beta1^t),  vhat = v / (1 - beta2^t)   (bias correction)
       theta <- theta - eta ( mhat / (sqrt(vhat) + eps) + lambda theta ),
   with lambda = weight_decay for the 2-D weight matrices and 0 for biases
   and LayerNorm parameters. */
typedef struct { float lr, beta1, beta2, eps, correction1, correction2; } GPT3__Adam;

/* One AdamW update of n parameters with weight decay lambda. */
static void gpt3__adamw(const GPT3__Adam *h, float *theta, const float *g, float *mom1,
                        float *mom2, size_t n, float lambda) {
    #pragma omp parallel for
    for (long long j = 0; j < (long long)n; j++) {
        mom1[j] = h->beta1 * mom1[j] + (1.0f - h->beta1) * g[j];
        mom2[j] = h->beta2 * mom2[j] + (1.0f - h->beta2) * g[j] * g[j];
        float mhat = mom1[j] / h->correction1, vhat = mom2[j] / h->correction2;
        theta[j] -= h->lr * (mhat / (sqrtf(vhat) + h->eps) + lambda * theta[j]);
    }
}

/* Does tensor i (of layer l, for the per-layer tensors) train? */
static int gpt3__trains(const GPT3 *m, int i, int l) {
    if (i <= 1) return m->frozen_layers == 0; /* wte (tied: input and output), wpe */
    if (i >= 14) return !m->frozen_final;                   /* lnfw, lnfb */
    return l >= m->frozen_layers;
}

/* Does anything of the model itself train? */
static int gpt3__model_trains(const GPT3 *m) {
    return m->frozen_layers < m->config.num_layers || !m->frozen_final;
}

GPT3DEF int gpt3_adamw_step(GPT3 *m, float lr, float beta1, float beta2,
                            float eps, float weight_decay, int t) {
    if (!m || !m->params || t < 1) return GPT3_ERR_ARGUMENT;
    if (!m->adam_m && gpt3__model_trains(m)) { /* calloc: frozen parts are never touched, so cost no memory */
        m->adam_m = (float *)GPT3_CALLOC(m->adam_count ? m->adam_count : 1, sizeof(float));
        m->adam_v = (float *)GPT3_CALLOC(m->adam_count ? m->adam_count : 1, sizeof(float));
        if (!m->adam_m || !m->adam_v) {
            GPT3_FREE(m->adam_m);
            GPT3_FREE(m->adam_v);
            m->adam_m = m->adam_v = NULL;
            return GPT3_ERR_NOMEM;
        }
    }
    GPT3__Adam h = {lr, beta1, beta2, eps, (float)(1.0 - pow(beta1, t)),
                    (float)(1.0 - pow(beta2, t))};
    size_t offset = 0, L = (size_t)m->config.num_layers;
    size_t lo = m->adam_first, hi = m->adam_first + m->adam_count; /* this process's share */
    for (int i = 0; m->adam_m && i < GPT3_NUM_TENSORS; i++) {
        float lambda = gpt3__tensor_is_decayed(i) ? weight_decay : 0.0f;
        int per_layer = i >= 2 && i <= 13;
        size_t parts = per_layer ? L : 1, n = m->tensor_sizes[i] / parts;
        for (size_t l = 0; l < parts; l++) { /* parameters at .. end - 1, those of the share */
            size_t at = offset + l * n > lo ? offset + l * n : lo, end = offset + (l + 1) * n < hi ? offset + (l + 1) * n : hi;
            if (at < end && gpt3__trains(m, i, (int)l))
                gpt3__adamw(&h, m->params + at, m->grads + at, m->adam_m + (at - lo), m->adam_v + (at - lo),
                            end - at, lambda);
        }
        offset += m->tensor_sizes[i];
    }
    if (m->lora) {
        GPT3LoRA *a = m->lora;
        gpt3__adamw(&h, a->params, a->grads, a->adam_m, a->adam_v, a->num_parameters, weight_decay);
    }
    if (m->head) { /* the weight decays, the bias does not */
        GPT3Head *hd = m->head;
        size_t nw = (size_t)hd->num_classes * m->config.channels;
        gpt3__adamw(&h, hd->params, hd->grads, hd->adam_m, hd->adam_v, nw, weight_decay);
        gpt3__adamw(&h, hd->params + nw, hd->grads + nw, hd->adam_m + nw, hd->adam_v + nw,
                    (size_t)hd->num_classes, 0.0f);
    }
    if (m->prompt) { /* no decay: it would pull the vectors towards 0, not towards the vocabulary */
        GPT3Prompt *p = m->prompt;
        gpt3__adamw(&h, p->params, p->grads, p->adam_m, p->adam_v,
                    (size_t)p->length * m->config.channels, 0.0f);
    }
    return GPT3_OK;
}

GPT3DEF int gpt3_parameter_share(size_t P, int rank, int ranks, size_t *first, size_t *count) {
    if (!first || !count || ranks < 1 || rank < 0 || rank >= ranks) return GPT3_ERR_ARGUMENT;
    size_t each = P / (size_t)ranks, extra = P % (size_t)ranks, r = (size_t)rank;
    *first = r * each + (r < extra ? r : extra);
    *count = each + (r < extra);
    return GPT3_OK;
}

GPT3DEF int gpt3_adamw_shard(GPT3 *m, int rank, int ranks) {
    size_t first, count;
    if (!m || !m->params || gpt3_parameter_share(m->num_parameters, rank, ranks, &first, &count) != GPT3_OK)
        return GPT3_ERR_ARGUMENT;
    if (m->adam_m) { /* keep the share's part of the moments held now */
        if (first < m->adam_first || first + count > m->adam_first + m->adam_count) return GPT3_ERR_ARGUMENT;
        float *mom1 = (float *)GPT3_MALLOC((count ? count : 1) * sizeof(float));
        float *mom2 = (float *)GPT3_MALLOC((count ? count : 1) * sizeof(float));
        if (!mom1 || !mom2) {
            GPT3_FREE(mom1);
            GPT3_FREE(mom2);
            return GPT3_ERR_NOMEM;
        }
        memcpy(mom1, m->adam_m + (first - m->adam_first), count * sizeof(float));
        memcpy(mom2, m->adam_v + (first - m->adam_first), count * sizeof(float));
        GPT3_FREE(m->adam_m);
        GPT3_FREE(m->adam_v);
        m->adam_m = mom1;
        m->adam_v = mom2;
    }
    m->adam_first = first;
    m->adam_count = count;
    return GPT3_OK;
}

/* ||g|| = sqrt(sum_j g_j^2) over every parameter (model, adapters, head, prompt);
   if it exceeds max_norm the whole gradient is scaled to length max_norm,
   keeping its direction. */
GPT3DEF float gpt3_clip_grad_norm(GPT3 *m, float max_norm) {
    if (!m || !m->grads) return 0.0f;
    float *parts[GPT3__GRADIENT_PARTS];
    size_t sizes[GPT3__GRADIENT_PARTS];
    double sum = 0.0;
    int n = GPT3__GRADIENT_PARTS;
    gpt3__gradient_parts(m, parts, sizes);
    for (int k = 0; k < n; k++)
        for (size_t j = 0; j < sizes[k]; j++) sum += (double)parts[k][j] * parts[k][j];
    double norm = sqrt(sum), coef = max_norm / (norm + 1e-6);
    if (max_norm > 0.0f && coef < 1.0)
        for (int k = 0; k < n; k++)
            for (size_t j = 0; j < sizes[k]; j++) parts[k][j] *= (float)coef;
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
/* Fine-tuning: freezing, dropout, LoRA, task heads, distillation           */
/* ======================================================================== */

/* Train only the top `trainable_blocks` blocks and the final LayerNorm;
   the blocks below and the embeddings keep their values, get no gradient,
   and the backward pass stops above them. The LM head is the token
   embedding (tied), so it trains only when everything does: half of a
   tied weight's gradient is not its gradient. 0: nothing of the model
   trains (a task head alone, or adapters); negative or >= L: everything
   trains (the default). */
GPT3DEF void gpt3_freeze(GPT3 *m, int trainable_blocks) {
    if (!m) return;
    int L = m->config.num_layers;
    if (trainable_blocks < 0 || trainable_blocks >= L) trainable_blocks = L;
    m->frozen_layers = trainable_blocks == L ? 0 : L - trainable_blocks;
    m->frozen_final = trainable_blocks == 0;
}

GPT3DEF size_t gpt3_trainable_parameters(const GPT3 *m) {
    if (!m || !m->params) return 0;
    size_t n = 0, L = (size_t)m->config.num_layers;
    for (int i = 0; i < GPT3_NUM_TENSORS; i++) {
        size_t layers = i >= 2 && i <= 13 ? L : 1;
        for (size_t l = 0; l < layers; l++)
            if (gpt3__trains(m, i, (int)l)) n += m->tensor_sizes[i] / layers;
    }
    float *parts[GPT3__GRADIENT_PARTS];
    size_t sizes[GPT3__GRADIENT_PARTS];
    gpt3__gradient_parts(m, parts, sizes);
    for (int k = 1; k < GPT3__GRADIENT_PARTS; k++) n += sizes[k];
    return n;
}

/* Dropout with probability p while training (training = 1); evaluation
   (training = 0) never drops. seed starts the masks' sequence. */
GPT3DEF void gpt3_set_training(GPT3 *m, int training, float dropout, uint64_t seed) {
    if (!m) return;
    m->training = training;
    m->dropout = dropout;
    m->dropout_seed = seed;
}

GPT3DEF void gpt3_set_distillation(GPT3 *m, const float *teacher_logits, float temperature,
                                   float alpha) {
    if (!m) return;
    m->teacher_logits = teacher_logits;
    m->distill_temperature = temperature > 0.0f ? temperature : 1.0f;
    m->distill_alpha = alpha;
}

/* Allocate n floats for params (filled with N(0, std) from seed, or 0),
   grads and the two AdamW moments (all 0). */
static int gpt3__alloc_trainable(size_t n, float std, uint64_t seed, float **params,
                                 float **grads, float **mom1, float **mom2) {
    *params = (float *)GPT3_CALLOC(n, sizeof(float));
    *grads = (float *)GPT3_CALLOC(n, sizeof(float));
    *mom1 = (float *)GPT3_CALLOC(n, sizeof(float));
    *mom2 = (float *)GPT3_CALLOC(n, sizeof(float));
    if (!*params || !*grads || !*mom1 || !*mom2) return GPT3_ERR_NOMEM;
    for (size_t j = 0; std > 0.0f && j < n; j++) (*params)[j] = std * gpt3__normal_at(seed, j);
    return GPT3_OK;
}

/* What gpt3__alloc_trainable allocated. */
static void gpt3__free_trainable(float *params, float *grads, float *mom1, float *mom2) {
    GPT3_FREE(params);
    GPT3_FREE(grads);
    GPT3_FREE(mom1);
    GPT3_FREE(mom2);
}

static void gpt3__free_lora(GPT3 *m) {
    GPT3LoRA *a = m->lora;
    if (!a) return;
    gpt3__free_trainable(a->params, a->grads, a->adam_m, a->adam_v);
    GPT3_FREE(a->u); GPT3_FREE(a->du);
    GPT3_FREE(a);
    m->lora = NULL;
}

/* Adapters of rank r on qkvw, attprojw, fcw and fcprojw of every block:
   A ~ N(0, 0.02), B = 0, scale alpha / r. */
GPT3DEF int gpt3_lora_attach(GPT3 *m, int rank, float alpha, uint64_t seed) {
    if (!m || !m->params || rank < 1 || rank > m->config.channels || m->lora) return GPT3_ERR_ARGUMENT;
    m->lora = (GPT3LoRA *)GPT3_CALLOC(1, sizeof(GPT3LoRA));
    if (!m->lora) return GPT3_ERR_NOMEM;
    GPT3LoRA *a = m->lora;
    a->rank = rank;
    a->alpha = alpha;
    a->num_parameters = (size_t)m->config.num_layers * 16 * rank * m->config.channels;
    int rc = gpt3__alloc_trainable(a->num_parameters, 0.0f, 0, &a->params, &a->grads,
                                   &a->adam_m, &a->adam_v);
    for (int l = 0; rc == GPT3_OK && l < m->config.num_layers; l++) {
        for (int k = 0; k < 4; k++) {
            float *A, *Bm, *dA, *dB;
            gpt3__lora_views(a, l, k, m->config.channels, &A, &Bm, &dA, &dB);
            for (float *p = A; p < Bm; p++) *p = 0.02f * gpt3__normal_at(seed, (uint64_t)(p - a->params));
        }
    }
    if (rc != GPT3_OK) gpt3__free_lora(m);
    return rc;
}

/* W <- W + (alpha / r) B A for every adapter, then drop the adapters: the
   model is a plain model again, saved as a normal checkpoint. */
GPT3DEF int gpt3_lora_merge(GPT3 *m) {
    if (!m || !m->lora) return GPT3_ERR_ARGUMENT;
    int C = m->config.channels, r = m->lora->rank;
    static const int in_c[4] = {1, 1, 1, 4}, out_c[4] = {3, 1, 4, 1};
    float s = m->lora->alpha / (float)r;
    for (int l = 0; l < m->config.num_layers; l++) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        float *weights[4] = {lw.qkvw, lw.attprojw, lw.fcw, lw.fcprojw};
        for (int k = 0; k < 4; k++) {
            float *A, *Bm, *dA, *dB, *W = weights[k];
            int in = in_c[k] * C, out = out_c[k] * C;
            gpt3__lora_views(m->lora, l, k, C, &A, &Bm, &dA, &dB);
            #pragma omp parallel for
            for (int o = 0; o < out; o++)
                for (int j = 0; j < r; j++)
                    for (int i = 0; i < in; i++) W[(size_t)o * in + i] += s * Bm[o * r + j] * A[(size_t)j * in + i];
        }
    }
    gpt3__free_lora(m);
    return GPT3_OK;
}

static void gpt3__free_head(GPT3 *m) {
    GPT3Head *h = m->head;
    if (!h) return;
    gpt3__free_trainable(h->params, h->grads, h->adam_m, h->adam_v);
    GPT3_FREE(h->hidden); GPT3_FREE(h->labels);
    GPT3_FREE(h->names); GPT3_FREE(h->names_memory);
    GPT3_FREE(h);
    m->head = NULL;
}

/* A linear head on the final hidden states h (B, T, C): logits = h W^T + b.
   BINARY and CLASSES read the state of each sequence's last real token;
   TAGS read every token. W ~ N(0, 0.02), b = 0. */
/* A head's kind and classes: BINARY has one logit, CLASSES at least two
   (one class has nothing to choose), TAGS at least one; 2^20 at most. */
static int gpt3__head_shape_ok(uint32_t kind, uint32_t num_classes) {
    if (kind == GPT3_HEAD_BINARY) return num_classes == 1;
    if (kind == GPT3_HEAD_CLASSES) return num_classes >= 2 && num_classes <= (1u << 20);
    return kind == GPT3_HEAD_TAGS && num_classes >= 1 && num_classes <= (1u << 20);
}

GPT3DEF int gpt3_head_attach(GPT3 *m, int kind, int num_classes, uint64_t seed) {
    if (!m || !m->params || m->head || kind < 0 || num_classes < 0 ||
        !gpt3__head_shape_ok((uint32_t)kind, (uint32_t)num_classes))
        return GPT3_ERR_ARGUMENT;
    m->head = (GPT3Head *)GPT3_CALLOC(1, sizeof(GPT3Head));
    if (!m->head) return GPT3_ERR_NOMEM;
    GPT3Head *h = m->head;
    h->kind = kind;
    h->num_classes = num_classes;
    h->mean_loss = -1.0f;
    size_t nw = (size_t)num_classes * m->config.channels;
    int rc = gpt3__alloc_trainable(nw + (size_t)num_classes, 0.02f, seed, &h->params, &h->grads,
                                   &h->adam_m, &h->adam_v);
    if (rc == GPT3_OK) memset(h->params + nw, 0, (size_t)num_classes * sizeof(float));
    if (rc != GPT3_OK) gpt3__free_head(m);
    return rc;
}

/* Room for the head's buffers at (B, T): some have B rows, some B T, so
   both counts must fit (B may grow while B T shrinks). */
static int gpt3__reserve_head(GPT3Head *h, int B, int T, int C) {
    size_t rows = (size_t)B * T, K = (size_t)h->num_classes;
    if (rows <= h->capacity && (size_t)B <= h->batch_capacity) return GPT3_OK;
    size_t R = rows > h->capacity ? rows : h->capacity;
    size_t Bc = (size_t)B > h->batch_capacity ? (size_t)B : h->batch_capacity;
    GPT3_FREE(h->hidden);
    GPT3_FREE(h->labels);
    h->hidden = (float *)GPT3_MALLOC((2 * Bc * C + R * (2 * K + 2)) * sizeof(float));
    h->labels = (int *)GPT3_MALLOC((R + Bc) * sizeof(int));
    h->capacity = h->batch_capacity = 0;
    if (!h->hidden || !h->labels) return GPT3_ERR_NOMEM;
    h->capacity = R;
    h->batch_capacity = Bc;
    h->dhidden = h->hidden + Bc * C;
    h->logits = h->dhidden + Bc * C;
    h->dlogits = h->logits + R * K;
    h->lse = h->dlogits + R * K;
    h->losses = h->lse + R;
    h->lengths = h->labels + R;
    return GPT3_OK;
}

/* labels: (B) for BINARY (0 or 1) and CLASSES (0 .. K-1), (B, T) for TAGS
   (0 .. K-1, negative = ignored); NULL for inference. lengths: (B) real
   tokens of each right-padded sequence (NULL: all T). Padding comes last,
   so causal attention never lets a real token see it, and no padded
   position counts in a loss. */
static int gpt3__check_head_batch(const GPT3Head *h, const int *lengths, const int *labels,
                                  int B, int T) {
    int K = h->num_classes, tags = h->kind == GPT3_HEAD_TAGS;
    for (int b = 0; lengths && b < B; b++)
        if (lengths[b] < 1 || lengths[b] > T) return GPT3_ERR_ARGUMENT;
    size_t n = labels ? (tags ? (size_t)B * T : (size_t)B) : 0;
    int top = h->kind == GPT3_HEAD_BINARY ? 2 : K;
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= top || (!tags && labels[i] < 0)) return GPT3_ERR_TARGET;
    return GPT3_OK;
}

/* Loss and, if dz, dLoss/dlogits of the head's rows: binary cross-entropy
   or softmax cross-entropy, mixed with distillation when a teacher is set.
   Returns the mean loss. */
static float gpt3__head_loss(GPT3 *m, float *dz) {
    GPT3Head *h = m->head;
    int K = h->num_classes, B = m->B, T = m->T, tags = h->kind == GPT3_HEAD_TAGS;
    size_t rows = tags ? (size_t)B * T : (size_t)B, count = 0;
    for (size_t r = 0; r < rows; r++) count += h->labels[r] >= 0;
    float inv_n = count ? 1.0f / (float)count : 0.0f, hard = m->teacher_logits ? 1.0f - m->distill_alpha : 1.0f;
    double sum = 0.0, kd = 0.0;
    if (h->kind == GPT3_HEAD_BINARY) {
        for (size_t r = 0; r < rows; r++) {
            float z = h->logits[r];
            sum += gpt3__bce_forward(z, h->labels[r]);
            if (dz) dz[r] += hard * gpt3__bce_backward(z, h->labels[r], inv_n);
            if (m->teacher_logits) { /* the binary case of distillation: logits (0, z) */
                float z2[2] = {0.0f, z}, t2[2] = {0.0f, m->teacher_logits[r]}, d2[2] = {0.0f, 0.0f};
                kd += m->distill_alpha * gpt3__distill_row(d2, z2, t2, 2, m->distill_temperature,
                                                           m->distill_alpha * inv_n);
                if (dz) dz[r] += d2[1];
            }
        }
    } else {
        gpt3__crossentropy_forward(h->losses, h->lse, h->logits, h->labels, 1, (int)rows, K);
        for (size_t r = 0; r < rows; r++) sum += h->losses[r];
        if (dz)
            gpt3__crossentropy_backward(dz, h->logits, h->lse, h->losses, h->labels, (int)count, 1,
                                        (int)rows, K, hard);
        if (m->teacher_logits) kd = gpt3__distill(m, dz, h->logits, h->labels, rows, K, inv_n);
    }
    return count ? (float)((hard * sum + kd) / count) : 0.0f;
}

/* The body and the head on the batch begun (its lengths and labels kept). */
static void gpt3__head_forward_rest(GPT3 *m) {
    GPT3Head *h = m->head;
    int B = m->B, T = m->T, C = m->config.channels, K = h->num_classes;
    gpt3__forward_body(m);
    const float *W = h->params, *bias = h->params + (size_t)K * C;
    if (h->kind == GPT3_HEAD_TAGS) {
        gpt3__matmul_forward(h->logits, m->acts.lnf, W, bias, B, T, C, K, &m->scratch);
    } else { /* the state of the last real token: it has seen the whole sequence */
        for (int b = 0; b < B; b++)
            memcpy(h->hidden + (size_t)b * C, m->acts.lnf + ((size_t)b * T + h->lengths[b] - 1) * C,
                   (size_t)C * sizeof(float));
        gpt3__matmul_forward(h->logits, h->hidden, W, bias, 1, B, C, K, &m->scratch);
    }
    h->mean_loss = h->has_labels ? gpt3__head_loss(m, NULL) : -1.0f;
}

GPT3DEF int gpt3_head_forward(GPT3 *m, const int *inputs, const int *lengths, const int *labels,
                              int B, int T) {
    if (!m || !m->head) return GPT3_ERR_ARGUMENT;
    GPT3Head *h = m->head;
    int C = m->config.channels, tags = h->kind == GPT3_HEAD_TAGS;
    int rc = gpt3__check_batch(m, inputs, NULL, B, T);
    if (rc == GPT3_OK) rc = gpt3__check_head_batch(h, lengths, labels, B, T);
    if (rc == GPT3_OK) rc = gpt3__begin_forward(m, inputs, NULL, B, T);
    if (rc == GPT3_OK) rc = gpt3__reserve_head(h, B, T, C);
    if (rc != GPT3_OK) return rc;
    for (int b = 0; b < B; b++) h->lengths[b] = lengths ? lengths[b] : T;
    for (int b = 0; labels && b < B; b++) {
        if (!tags) { h->labels[b] = labels[b]; continue; }
        for (int t = 0; t < T; t++) /* padding never counts */
            h->labels[b * T + t] = t < h->lengths[b] ? labels[b * T + t] : -1;
    }
    h->has_labels = labels != NULL;
    gpt3__head_forward_rest(m);
    return GPT3_OK;
}

/* dLoss/dlogits, then logits = h W^T + b backwards into the head's gradient
   and dLoss/dh; a sequence head's dLoss/dh lands on each last real token. Then
   the body, unless nothing in it trains and nothing wants dLoss/dx_0. */
static void gpt3__head_backward_rest(GPT3 *m) {
    GPT3Head *h = m->head;
    int B = m->B, T = m->T, C = m->config.channels, K = h->num_classes;
    int tags = h->kind == GPT3_HEAD_TAGS, rows = tags ? B * T : B;
    float *dW = h->grads, *db = h->grads + (size_t)K * C;
    memset(h->dlogits, 0, (size_t)rows * K * sizeof(float));
    gpt3__head_loss(m, h->dlogits);
    gpt3__zero(m->acts.dln, (size_t)B * T * C);
    if (tags) {
        gpt3__matmul_backward(m->acts.dln, dW, db, h->dlogits, m->acts.lnf, h->params, B, T, C, K,
                              &m->scratch);
    } else {
        memset(h->dhidden, 0, (size_t)B * C * sizeof(float));
        gpt3__matmul_backward(h->dhidden, dW, db, h->dlogits, h->hidden, h->params, 1, B, C, K,
                              &m->scratch);
        for (int b = 0; b < B; b++)
            memcpy(m->acts.dln + ((size_t)b * T + h->lengths[b] - 1) * C, h->dhidden + (size_t)b * C,
                   (size_t)C * sizeof(float));
    }
    if (m->lora || !m->frozen_final || gpt3__wants_input_gradient(m)) gpt3__backward_body(m);
}

GPT3DEF int gpt3_head_backward(GPT3 *m) {
    if (!m || !m->head) return GPT3_ERR_ARGUMENT;
    if (!m->head->has_labels) return GPT3_ERR_NO_TARGETS;
    gpt3__head_backward_rest(m);
    return gpt3__adversarial(m, 1);
}

/* ---- Prompt tuning (Lester et al. 2021) --------------------------------------
   The model is frozen; only the N vectors P (and a task head) train. They
   enter the model where token embeddings do, x_0[t] = P[t] + wpe[t], so
   by the chain rule dLoss/dP[t] = sum_b dLoss/dx_0[b,t]: the gradient the
   backward pass carries down to the input positions, summed over the
   batch (gpt3__encoder_backward). Section 4's risk is minimised over P
   alone: theta = P. */
static void gpt3__free_prompt(GPT3 *m) {
    GPT3Prompt *p = m->prompt;
    if (!p) return;
    gpt3__free_trainable(p->params, p->grads, p->adam_m, p->adam_v);
    GPT3_FREE(p);
    m->prompt = NULL;
}

GPT3DEF int gpt3_prompt_attach(GPT3 *m, int n, const int *init_tokens, int n_init, uint64_t seed) {
    if (!m || !m->params || m->prompt || n < 1 || n >= m->config.max_seq_len ||
        (init_tokens && (n_init < 1 || n_init > n)))
        return GPT3_ERR_ARGUMENT;
    for (int i = 0; init_tokens && i < n_init; i++)
        if (init_tokens[i] < 0 || init_tokens[i] >= m->config.vocab_size) return GPT3_ERR_TOKEN;
    m->prompt = (GPT3Prompt *)GPT3_CALLOC(1, sizeof(GPT3Prompt));
    if (!m->prompt) return GPT3_ERR_NOMEM;
    GPT3Prompt *p = m->prompt;
    size_t C = (size_t)m->config.channels;
    p->length = n;
    int rc = gpt3__alloc_trainable((size_t)n * C, init_tokens ? 0.0f : 0.02f, seed, &p->params,
                                   &p->grads, &p->adam_m, &p->adam_v);
    for (int i = 0; rc == GPT3_OK && init_tokens && i < n; i++)
        memcpy(p->params + i * C, m->w.wte + (size_t)init_tokens[i % n_init] * C, C * sizeof(float));
    if (rc != GPT3_OK) gpt3__free_prompt(m);
    return rc;
}

/* ---- Adversarial training (FGM, Miyato et al. 2017; PGD, Madry et al. 2018)
   Training becomes the min-max problem
       min_theta (1/N) sum_i  max_{||r_i|| <= epsilon}  l(M_theta(x_i + r_i), y_i)
   with r_i a perturbation of example i's token embeddings (the whole
   sequence's, one norm an example). The inner maximum has no closed form;
   to first order, l(x + r) ~ l(x) + g . r with g = dl/dx, and the r of
   norm epsilon that maximises g . r points along g:
       r = epsilon g / ||g||_2                                    (FGM)
   g is the clean backward's dLoss/dx_0, an example's rows of it (the
   mean's 1/N scales g, not its direction). PGD takes K smaller steps of
   size alpha along the gradient at the current point, projecting back onto
   the ball after each (r <- r epsilon / ||r|| when ||r|| > epsilon). The
   parameters' gradient is then that of the clean loss plus that of the
   loss at x + r, r held fixed (the outer minimum, as both papers train).
   Only the tokens' rows move: a soft prompt is the model's, not the input. */
GPT3DEF int gpt3_set_adversarial(GPT3 *m, int steps, float epsilon, float alpha) {
    if (!m || steps < 0 || !(epsilon >= 0.0f) || !(alpha >= 0.0f) || epsilon > 1e30f ||
        alpha > 1e30f || (steps > 1 && epsilon > 0.0f && alpha == 0.0f))
        return GPT3_ERR_ARGUMENT;
    m->adversary.steps = steps;
    m->adversary.epsilon = epsilon;
    m->adversary.alpha = alpha;
    return GPT3_OK;
}

/* r <- r + step g / ||g||, then back onto the ball ||r|| <= epsilon, for
   each example's token rows (B, N+T, C); g = a->dresidual = dLoss/dx_0. */
static void gpt3__adversarial_step(GPT3 *m, float step) {
    int N = gpt3__prompt_length(m), S = N + m->T, C = m->config.channels;
    size_t rows = (size_t)m->T * C;
    float eps = m->adversary.epsilon;
    #pragma omp parallel for
    for (int b = 0; b < m->B; b++) {
        const float *g = m->acts.dresidual + ((size_t)b * S + N) * C;
        float *r = m->adversary.delta + ((size_t)b * S + N) * C;
        double gg = 0.0, rr = 0.0;
        for (size_t i = 0; i < rows; i++) gg += (double)g[i] * g[i];
        float scale = gg > 0.0 ? (float)(step / sqrt(gg)) : 0.0f;
        for (size_t i = 0; i < rows; i++) {
            r[i] += scale * g[i];
            rr += (double)r[i] * r[i];
        }
        float shrink = rr > (double)eps * eps ? (float)(eps / sqrt(rr)) : 1.0f;
        for (size_t i = 0; shrink < 1.0f && i < rows; i++) r[i] *= shrink;
    }
}

/* Room for r, and for PGD a copy of the clean gradients. */
static int gpt3__reserve_adversary(GPT3 *m, size_t delta_floats, size_t grad_floats) {
    GPT3Adversary *adv = &m->adversary;
    if (delta_floats > adv->delta_capacity) {
        GPT3_FREE(adv->delta);
        adv->delta = (float *)GPT3_MALLOC(delta_floats * sizeof(float));
        adv->delta_capacity = adv->delta ? delta_floats : 0;
        if (!adv->delta) return GPT3_ERR_NOMEM;
    }
    if (grad_floats > adv->saved_capacity) {
        GPT3_FREE(adv->saved_grads);
        adv->saved_grads = (float *)GPT3_MALLOC(grad_floats * sizeof(float));
        adv->saved_capacity = adv->saved_grads ? grad_floats : 0;
        if (!adv->saved_grads) return GPT3_ERR_NOMEM;
    }
    return GPT3_OK;
}

/* Copy every gradient to (save) or from (restore) the adversary's buffer. */
static void gpt3__keep_gradients(GPT3 *m, int restore) {
    float *parts[GPT3__GRADIENT_PARTS], *saved = m->adversary.saved_grads;
    size_t sizes[GPT3__GRADIENT_PARTS];
    gpt3__gradient_parts(m, parts, sizes);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) {
        if (restore && sizes[k]) memcpy(parts[k], saved, sizes[k] * sizeof(float));
        if (!restore && sizes[k]) memcpy(saved, parts[k], sizes[k] * sizeof(float));
        saved += sizes[k];
    }
}

/* After a clean backward (which left g in a->dresidual): the perturbed
   forwards and backwards, on the same batch with the same dropout masks,
   through the task head (head = 1) or the LM head. */
static int gpt3__adversarial(GPT3 *m, int head) {
    GPT3Adversary *adv = &m->adversary;
    if (adv->steps < 1 || !(adv->epsilon > 0.0f)) return GPT3_OK;
    float *parts[GPT3__GRADIENT_PARTS];
    size_t sizes[GPT3__GRADIENT_PARTS], all = 0;
    gpt3__gradient_parts(m, parts, sizes);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) all += sizes[k];
    size_t n = (size_t)m->B * (gpt3__prompt_length(m) + m->T) * m->config.channels;
    int rc = gpt3__reserve_adversary(m, n, adv->steps > 1 ? all : 0);
    if (rc != GPT3_OK) return rc;
    float clean = head ? m->head->mean_loss : m->mean_loss;
    gpt3__zero(adv->delta, n);
    if (adv->steps > 1) gpt3__keep_gradients(m, 0);
    for (int k = 1; k <= adv->steps; k++) {
        gpt3__adversarial_step(m, adv->steps == 1 ? adv->epsilon : adv->alpha);
        if (k > 1) gpt3__keep_gradients(m, 1); /* drop the last step's: only the final r counts */
        adv->active = 1;
        if (head) gpt3__head_forward_rest(m);
        else gpt3__lm_forward(m, 1);
        adv->active = 0;
        if (head) gpt3__head_backward_rest(m);
        else gpt3__lm_backward(m);
    }
    adv->loss = head ? m->head->mean_loss : m->mean_loss;
    if (head) m->head->mean_loss = clean;
    else m->mean_loss = clean;
    return GPT3_OK;
}

/* Free everything the model owns: parameters, optimizer state,
   activations, adapters, head and prompt. */
GPT3DEF void gpt3_free(GPT3 *m) {
    if (!m) return;
    gpt3__free_lora(m);
    gpt3__free_head(m);
    gpt3__free_prompt(m);
    GPT3_FREE(m->adversary.delta);
    GPT3_FREE(m->adversary.saved_grads);
    GPT3_FREE(m->params);
    GPT3_FREE(m->grads);
    GPT3_FREE(m->adam_m);
    GPT3_FREE(m->adam_v);
    GPT3_FREE(m->acts_memory);
    GPT3_FREE(m->inputs);
    GPT3_FREE(m->targets);
    GPT3_FREE(m->scratch.memory);
    memset(m, 0, sizeof(*m));
}

/* ======================================================================== */
/* Generation: sampling and the KV cache                                    */
/* ======================================================================== */

GPT3DEF void gpt3_rng_seed(GPT3Rng *rng, uint64_t seed) {
    if (rng) rng->state = seed;
}

GPT3DEF uint32_t gpt3_rng_u32(GPT3Rng *rng) {
    if (!rng) return 0;
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
    return gpt3__attention_span(gpt3__layer_window(cfg, l, cfg->max_seq_len), cfg->max_seq_len);
}

GPT3DEF int gpt3_kv_init(GPT3KVCache *kv, const GPT3 *m) {
    if (kv) memset(kv, 0, sizeof(*kv));
    if (!kv || !m || !m->params) return GPT3_ERR_ARGUMENT;
    const GPT3Config *cfg = &m->config;
    size_t C = (size_t)cfg->channels, rows = 0;
    for (int l = 0; l < cfg->num_layers; l++) rows += (size_t)gpt3__cache_rows(cfg, l);
    /* keys, values; x, xn, qkv, atty, proj, fch, fch_gelu, lora_u; att (a
       row per head); logits; mean, rstd */
    size_t att = (size_t)cfg->num_heads * cfg->max_seq_len;
    size_t total = 2 * rows * C + 16 * C + att + cfg->vocab_size + 2;
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
    kv->lora_u = kv->fch_gelu + 4 * C;
    kv->att = kv->lora_u + C;
    kv->logits = kv->att + att;
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
   and values of positions < t. The same layer functions at B = T = 1
   (LoRA's adapters included, when they are not merged), except attention,
   which reads its past from the cache. embedding (C) is the token's row of
   wte, or a soft prompt's vector. */
static void gpt3__kv_step(GPT3 *m, GPT3KVCache *kv, const float *embedding) {
    const GPT3Config *cfg = &m->config;
    int C = cfg->channels, NH = cfg->num_heads, hs = C / NH, t = kv->pos;
    float *keys = kv->keys, *values = kv->values;
    gpt3__residual_forward(kv->x, embedding, m->w.wpe + (size_t)t * C, (size_t)C);
    for (int l = 0; l < cfg->num_layers; l++) {
        GPT3Tensors lw = gpt3__layer_tensors(&m->w, l, C);
        int window = gpt3__layer_window(cfg, l, cfg->max_seq_len);
        int rows = gpt3__cache_rows(cfg, l), start = gpt3__attention_start(window, t);
        gpt3__layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, lw.ln1w, lw.ln1b, 1, 1, C);
        gpt3__linear_rows(m, l, GPT3__QKV, kv->qkv, kv->lora_u, kv->xn, lw.qkvw, lw.qkvb, 1, C, 3 * C);
        memcpy(keys + (size_t)(t % rows) * C, kv->qkv + C, (size_t)C * sizeof(float));
        memcpy(values + (size_t)(t % rows) * C, kv->qkv + 2 * C, (size_t)C * sizeof(float));
        #pragma omp parallel for num_threads(m->scratch.threads)
        for (int h = 0; h < NH; h++)
            gpt3__attention_row(kv->atty + h * hs, kv->att + (size_t)h * cfg->max_seq_len,
                                kv->qkv + h * hs, keys + h * hs, values + h * hs, (size_t)C, start,
                                t - start + 1, rows, hs, NULL, 0, 0);
        gpt3__linear_rows(m, l, GPT3__ATTPROJ, kv->proj, kv->lora_u, kv->atty, lw.attprojw, lw.attprojb, 1,
                          C, C);
        gpt3__residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
        gpt3__layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, lw.ln2w, lw.ln2b, 1, 1, C);
        gpt3__linear_rows(m, l, GPT3__FC, kv->fch, kv->lora_u, kv->xn, lw.fcw, lw.fcb, 1, C, 4 * C);
        gpt3__gelu_forward(kv->fch_gelu, kv->fch, 4 * (size_t)C);
        gpt3__linear_rows(m, l, GPT3__FCPROJ, kv->proj, kv->lora_u, kv->fch_gelu, lw.fcprojw, lw.fcprojb, 1,
                          4 * C, C);
        gpt3__residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
        keys += (size_t)rows * C;
        values += (size_t)rows * C;
    }
    gpt3__layernorm_forward(kv->xn, kv->stats, kv->stats + 1, kv->x, m->w.lnfw, m->w.lnfb, 1, 1, C);
    gpt3__matmul_forward(kv->logits, kv->xn, m->w.wte, NULL, 1, 1, C, cfg->vocab_size, &m->scratch);
    kv->pos++;
}

/* With a soft prompt, the first token of a sequence goes in after the
   prompt's N vectors (positions 0 .. N-1, as in every forward). */
GPT3DEF int gpt3_kv_forward(GPT3 *m, GPT3KVCache *kv, int token) {
    if (!m || !m->params || !kv || !kv->memory) return GPT3_ERR_ARGUMENT;
    int N = kv->pos == 0 ? gpt3__prompt_length(m) : 0, C = m->config.channels;
    if (token < 0 || token >= m->config.vocab_size) return GPT3_ERR_TOKEN;
    if (kv->pos + N >= m->config.max_seq_len) return GPT3_ERR_SEQ_LEN;
    for (int i = 0; i < N; i++) gpt3__kv_step(m, kv, m->prompt->params + (size_t)i * C);
    gpt3__kv_step(m, kv, m->w.wte + (size_t)token * C);
    return GPT3_OK;
}

/* ======================================================================== */
/* Evaluation: in-context scoring; accuracy, precision, recall, F1, entities */
/* ======================================================================== */

/* The arguments of gpt3_score_choices; *T gets the batch's length. */
static int gpt3__check_choices(const GPT3 *m, const int *context, int n_context,
                               const int *const *choices, const int *n_choice, int n_choices,
                               int *T) {
    if (!m || !m->params || !context || !choices || !n_choice || n_choices < 1 || n_context < 1)
        return GPT3_ERR_ARGUMENT;
    int room = m->config.max_seq_len - gpt3__prompt_length(m); /* a soft prompt goes first */
    *T = 0;
    for (int c = 0; c < n_choices; c++) {
        if (!choices[c] || n_choice[c] < 1) return GPT3_ERR_ARGUMENT;
        if (n_choice[c] > room) return GPT3_ERR_SEQ_LEN;
        *T = n_choice[c] > *T ? n_choice[c] : *T;
    }
    if (*T > room - n_context) return GPT3_ERR_SEQ_LEN;
    *T += n_context;
    return GPT3_OK;
}

GPT3DEF int gpt3_score_choices(GPT3 *m, const int *context, int n_context, const int *const *choices,
                               const int *n_choice, int n_choices, double *logprobs, int *greedy) {
    int T, rc = gpt3__check_choices(m, context, n_context, choices, n_choice, n_choices, &T);
    if (rc != GPT3_OK) return rc;
    if (!logprobs) return GPT3_ERR_ARGUMENT;
    int B = n_choices, C = m->config.channels, V = m->config.vocab_size;
    int *inputs = (int *)GPT3_MALLOC((size_t)B * T * sizeof(int));
    if (!inputs) return GPT3_ERR_NOMEM;
    for (int c = 0; c < B; c++)
        for (int t = 0; t < T; t++) { /* context, choice, then padding (never read: causal) */
            int j = t - n_context, *x = inputs + (size_t)c * T + t;
            *x = t < n_context ? context[t] : j < n_choice[c] ? choices[c][j] : 0;
        }
    rc = gpt3__begin_forward(m, inputs, NULL, B, T);
    GPT3_FREE(inputs);
    if (rc != GPT3_OK) return rc;
    gpt3__forward_body(m);
    /* Choice c's token j is predicted at position n_context - 1 + j of row
       c. Only those R rows of h go through the LM head: gathered (R, C) in
       the backward's scratch dln, their logits (R, V) in the logits' room. */
    GPT3Activations *a = &m->acts;
    size_t R = 0;
    float *rows = a->dln, *z = a->logits;
    for (int c = 0; c < B; c++)
        for (int j = 0; j < n_choice[c]; j++, R++)
            memcpy(rows + R * C, a->lnf + ((size_t)c * T + n_context - 1 + j) * C, (size_t)C * sizeof(float));
    gpt3__matmul_forward(z, rows, m->w.wte, NULL, 1, (int)R, C, V, &m->scratch);
    R = 0;
    for (int c = 0; c < B; c++) {
        double sum = 0.0;
        int all_best = 1;
        for (int j = 0; j < n_choice[c]; j++, R++) {
            const float *zr = z + R * V;
            float top = gpt3__max_value(zr, V);
            int token = choices[c][j];
            sum += (double)zr[token] - top - log(gpt3__sum_exp(zr, top, V));
            all_best &= zr[token] == top;
        }
        logprobs[c] = sum;
        if (greedy) greedy[c] = all_best;
    }
    m->logits = NULL; /* its buffer held only the choices' rows */
    m->mean_loss = -1.0f;
    return GPT3_OK;
}

/* For class k, over the examples whose gold label is known:
       precision_k = TP_k / (TP_k + FP_k)   (of those predicted k, how many are)
       recall_k    = TP_k / (TP_k + FN_k)   (of those that are k, how many found)
       F1_k        = 2 P R / (P + R)        (0 when P + R = 0, as scikit-learn)
   macro: the plain mean over classes; weighted: weighted by support (the
   number of gold examples of the class); micro: from the summed counts. */
static GPT3Score gpt3__score(long tp, long predicted, long support) {
    GPT3Score s;
    s.precision = predicted ? (double)tp / (double)predicted : 0.0;
    s.recall = support ? (double)tp / (double)support : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    s.support = support;
    return s;
}

/* Per-class scores, their macro/weighted/micro averages, from counts. */
static void gpt3__report_scores(GPT3Report *r, const long *tp, const long *predicted,
                                const long *support) {
    long all_tp = 0, all_pred = 0, all_support = 0;
    memset(&r->macro, 0, sizeof(r->macro));
    memset(&r->weighted, 0, sizeof(r->weighted));
    for (int k = 0; k < r->num_classes; k++) {
        GPT3Score s = gpt3__score(tp[k], predicted[k], support[k]);
        r->per_class[k] = s;
        r->macro.precision += s.precision / r->num_classes;
        r->macro.recall += s.recall / r->num_classes;
        r->macro.f1 += s.f1 / r->num_classes;
        r->weighted.precision += s.precision * s.support;
        r->weighted.recall += s.recall * s.support;
        r->weighted.f1 += s.f1 * s.support;
        all_tp += tp[k];
        all_pred += predicted[k];
        all_support += support[k];
    }
    if (all_support) {
        r->weighted.precision /= all_support;
        r->weighted.recall /= all_support;
        r->weighted.f1 /= all_support;
    }
    r->macro.support = r->weighted.support = all_support;
    r->micro = gpt3__score(all_tp, all_pred, all_support);
}

/* A report of K classes (K 0: an entity report whose tags name no type). */
static int gpt3__report_alloc(GPT3Report *r, int K) {
    size_t k = K > 0 ? (size_t)K : 1;
    memset(r, 0, sizeof(*r));
    if (K < 0 || K > GPT3_REPORT_MAX_CLASSES) return GPT3_ERR_ARGUMENT;
    r->num_classes = K;
    r->confusion = (long *)GPT3_CALLOC(k * k, sizeof(long));
    r->per_class = (GPT3Score *)GPT3_CALLOC(k, sizeof(GPT3Score));
    if (r->confusion && r->per_class) return GPT3_OK;
    gpt3_report_free(r);
    return GPT3_ERR_NOMEM;
}

GPT3DEF int gpt3_report_classes(GPT3Report *r, const int *gold, const int *pred, size_t n, int K) {
    if (r) memset(r, 0, sizeof(*r));
    if (!r || (n && (!gold || !pred)) || K < 1) return GPT3_ERR_ARGUMENT;
    int rc = gpt3__report_alloc(r, K);
    if (rc != GPT3_OK) return rc;
    for (size_t i = 0; i < n; i++) {
        if (gold[i] < 0) continue; /* not labelled */
        if (gold[i] >= K || pred[i] < 0 || pred[i] >= K) { gpt3_report_free(r); return GPT3_ERR_TARGET; }
        r->confusion[(size_t)gold[i] * K + pred[i]]++;
    }
    long *counts = (long *)GPT3_CALLOC(3 * (size_t)K, sizeof(long));
    if (!counts) { gpt3_report_free(r); return GPT3_ERR_NOMEM; }
    long correct = 0;
    for (int g = 0; g < K; g++) {
        for (int p = 0; p < K; p++) {
            long c = r->confusion[(size_t)g * K + p];
            counts[K + p] += c;        /* predicted p */
            counts[2 * K + g] += c;    /* support of g */
            if (g == p) { counts[g] += c; correct += c; }
        }
    }
    gpt3__report_scores(r, counts, counts + K, counts + 2 * K);
    r->total = r->micro.support;
    r->accuracy = r->total ? (double)correct / (double)r->total : 0.0;
    GPT3_FREE(counts);
    return GPT3_OK;
}

/* ---- Entities (named-entity recognition with BIO tags) ----
   A tag is "O", or "B-TYPE" (begins an entity), or "I-TYPE" (inside one).
   As conlleval and seqeval (default mode) read them: an entity begins at a
   B-, or at an I- that does not continue an entity of its type (after O,
   or after another type); it ends before an O, a B-, another type, or a
   boundary (a tag < 0, between sentences). An entity counts as found only
   if its span and type are exactly those of a gold entity. */
typedef struct { size_t start, end; int type; } GPT3__Entity;

/* The type of a tag (index into types[]), -1 for O; *begins: a B- tag. */
static int gpt3__tag_type(const char *tag, const char *const *types, int n_types, int *begins) {
    *begins = tag[0] == 'B';
    if ((tag[0] != 'B' && tag[0] != 'I') || tag[1] != '-') return -1;
    for (int k = 0; k < n_types; k++) if (strcmp(tag + 2, types[k]) == 0) return k;
    return -1;
}

/* The entities of a tag sequence into *out (allocated); their count. */
static size_t gpt3__entities(const int *tags, size_t n, const char *const *tag_names,
                             const char *const *types, int n_types, GPT3__Entity *out) {
    size_t count = 0;
    int open = -1; /* the type of the entity in progress, -1 if none */
    for (size_t i = 0; i <= n; i++) {
        int begins = 0, type = i < n && tags[i] >= 0 ? gpt3__tag_type(tag_names[tags[i]], types, n_types, &begins) : -1;
        if (open >= 0 && (type != open || begins)) { out[count - 1].end = i; open = -1; }
        if (type >= 0 && open < 0) {
            out[count].start = i;
            out[count++].type = type;
            open = type;
        }
    }
    return count;
}

GPT3DEF int gpt3_report_entities(GPT3Report *r, const int *gold, const int *pred, size_t n,
                                 const char *const *tag_names, int n_tags) {
    if (r) memset(r, 0, sizeof(*r));
    if (!r || !tag_names || n_tags < 1 || (n && (!gold || !pred))) return GPT3_ERR_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (gold[i] >= n_tags || pred[i] >= n_tags) return GPT3_ERR_TARGET;
    /* the entity types, in the order they first appear among the tag names */
    const char **types = (const char **)GPT3_MALLOC((size_t)n_tags * sizeof(char *));
    GPT3__Entity *g = (GPT3__Entity *)GPT3_MALLOC((n + 1) * sizeof(GPT3__Entity));
    GPT3__Entity *p = (GPT3__Entity *)GPT3_MALLOC((n + 1) * sizeof(GPT3__Entity));
    int n_types = 0, rc = types && g && p ? GPT3_OK : GPT3_ERR_NOMEM;
    for (int t = 0; rc == GPT3_OK && t < n_tags; t++) {
        int begins, known = gpt3__tag_type(tag_names[t], types, n_types, &begins) >= 0;
        if (!known && (tag_names[t][0] == 'B' || tag_names[t][0] == 'I') && tag_names[t][1] == '-')
            types[n_types++] = tag_names[t] + 2;
    }
    if (rc == GPT3_OK) rc = gpt3__report_alloc(r, n_types);
    if (rc == GPT3_OK) {
        size_t ng = gpt3__entities(gold, n, tag_names, types, n_types, g);
        size_t np = gpt3__entities(pred, n, tag_names, types, n_types, p);
        long *counts = (long *)GPT3_CALLOC(3 * (size_t)n_types + 1, sizeof(long));
        if (!counts) rc = GPT3_ERR_NOMEM;
        for (size_t i = 0, j = 0; counts && i < ng; i++) { /* both lists are in order of start */
            counts[2 * r->num_classes + g[i].type]++;
            while (j < np && p[j].start < g[i].start) j++;
            if (j < np && p[j].start == g[i].start && p[j].end == g[i].end && p[j].type == g[i].type)
                counts[g[i].type]++;
        }
        for (size_t j = 0; counts && j < np; j++) counts[r->num_classes + p[j].type]++;
        if (counts) gpt3__report_scores(r, counts, counts + r->num_classes, counts + 2 * r->num_classes);
        r->total = r->micro.support;
        r->accuracy = r->micro.f1;
        r->class_names = types;
        types = NULL;
        GPT3_FREE(counts);
    }
    GPT3_FREE(types);
    GPT3_FREE(g);
    GPT3_FREE(p);
    if (rc != GPT3_OK) gpt3_report_free(r);
    return rc;
}

GPT3DEF void gpt3_report_free(GPT3Report *r) {
    if (!r) return;
    GPT3_FREE(r->confusion);
    GPT3_FREE(r->per_class);
    GPT3_FREE((void *)r->class_names);
    memset(r, 0, sizeof(*r));
}

/* Append to buf (size bytes, kept NUL-terminated) as snprintf would;
   *used counts what the whole text needs, even past size. */
static void gpt3__append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(*used < size ? buf + *used : NULL, *used < size ? size - *used : 0, fmt, args);
    if (n > 0) *used += (size_t)n;
    va_end(args);
}

/* The report as scikit-learn's classification_report lays it out, then
   (for classes) the confusion matrix, rows gold and columns predicted.
   names: the class names (NULL: the entity types of an entity report). */
GPT3DEF size_t gpt3_report_format(const GPT3Report *r, const char *const *names, char *buf,
                                  size_t size) {
    size_t used = 0, width = 12;
    const char *const *label = names ? names : r ? r->class_names : NULL;
    if (!r || !buf || !size) return 0;
    buf[0] = 0;
    for (int k = 0; label && k < r->num_classes; k++) if (strlen(label[k]) > width) width = strlen(label[k]);
    gpt3__append(buf, size, &used, "%*s %9s %9s %9s %9s\n\n", (int)width, "", "precision", "recall",
                 "f1-score", "support");
    for (int k = 0; k < r->num_classes; k++) {
        const GPT3Score *s = &r->per_class[k];
        gpt3__append(buf, size, &used, "%*s %9.4f %9.4f %9.4f %9ld\n", (int)width,
                     label ? label[k] : "?", s->precision, s->recall, s->f1, s->support);
    }
    if (r->class_names && r->num_classes == 0)
        gpt3__append(buf, size, &used, "%*s (no entity types: every tag is O)\n", (int)width, "");
    gpt3__append(buf, size, &used, "\n");
    if (!r->class_names)
        gpt3__append(buf, size, &used, "%*s %9s %9s %9.4f %9ld\n", (int)width, "accuracy", "", "",
                     r->accuracy, r->total);
    else
        gpt3__append(buf, size, &used, "%*s %9.4f %9.4f %9.4f %9ld\n", (int)width, "micro avg",
                     r->micro.precision, r->micro.recall, r->micro.f1, r->micro.support);
    const GPT3Score *avg[2] = {&r->macro, &r->weighted};
    const char *avg_name[2] = {"macro avg", "weighted avg"};
    for (int k = 0; k < 2; k++)
        gpt3__append(buf, size, &used, "%*s %9.4f %9.4f %9.4f %9ld\n", (int)width, avg_name[k],
                     avg[k]->precision, avg[k]->recall, avg[k]->f1, avg[k]->support);
    if (r->class_names) return used;
    gpt3__append(buf, size, &used, "\nconfusion matrix (rows: gold, columns: predicted)\n%*s", (int)width, "");
    for (int p = 0; p < r->num_classes; p++) gpt3__append(buf, size, &used, " %9.9s", label ? label[p] : "?");
    for (int g = 0; g < r->num_classes; g++) {
        gpt3__append(buf, size, &used, "\n%*s", (int)width, label ? label[g] : "?");
        for (int p = 0; p < r->num_classes; p++)
            gpt3__append(buf, size, &used, " %9ld", r->confusion[(size_t)g * r->num_classes + p]);
    }
    gpt3__append(buf, size, &used, "\n");
    return used;
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

/* Open a file to read: GPT3_ERR_NOT_FILE for a folder, and, where the
   reader must know the size before it allocates (sized), for a pipe. */
static int gpt3__open_file(const char *path, int sized, FILE **out) {
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f) return GPT3_ERR_OPEN;
    int c = fgetc(f); /* a folder opens, but cannot be read */
    if (ferror(f) || (sized && gpt3__bytes_left(f) < 0) || (c != EOF && ungetc(c, f) == EOF)) {
        fclose(f);
        return GPT3_ERR_NOT_FILE;
    }
    *out = f;
    return GPT3_OK;
}

/* The rest of f must be exactly `need` bytes: fewer is a file cut short,
   more one whose header does not describe it. */
static int gpt3__check_length(FILE *f, double need) {
    double left = (double)gpt3__bytes_left(f);
    return left < need ? GPT3_ERR_TRUNCATED : left > need ? GPT3_ERR_CORRUPT : GPT3_OK;
}

/* Every file is written atomically: to "path.tmp" first, flushed to disk,
   then renamed over path, so a failure at any point (a full disk, a crash)
   leaves the previous file at path as it was. Closing (flushed and synced)
   and renaming are separate steps, so that two files can be made complete
   before either takes its place (gpt3_save_run). */
typedef struct { FILE *f; char *tmp; int ok; } GPT3__AtomicFile;

/* path + suffix, allocated; NULL if out of memory. */
static char *gpt3__path_with(const char *path, const char *suffix) {
    size_t len = strlen(path), extra = strlen(suffix) + 1;
    char *joined = (char *)GPT3_MALLOC(len + extra);
    if (!joined) return NULL;
    memcpy(joined, path, len);
    memcpy(joined + len, suffix, extra);
    return joined;
}

static int gpt3__atomic_open(GPT3__AtomicFile *a, const char *path) {
    a->f = NULL;
    a->ok = 1;
    a->tmp = gpt3__path_with(path, ".tmp");
    if (!a->tmp) return GPT3_ERR_NOMEM;
    a->f = fopen(a->tmp, "wb");
    if (a->f) return GPT3_OK;
    GPT3_FREE(a->tmp);
    a->tmp = NULL;
    return GPT3_ERR_OPEN;
}

static void gpt3__atomic_write_le(GPT3__AtomicFile *a, const void *words, size_t n,
                                  size_t width) {
    a->ok = a->ok && gpt3__write_le(a->f, words, n, width);
}

/* Flush the temporary file to disk and close it; on failure it is
   removed (and a->tmp freed). */
static int gpt3__atomic_close(GPT3__AtomicFile *a) {
    int ok = a->ok && fflush(a->f) == 0;
#ifdef GPT3__HAVE_POSIX
    ok = ok && fsync(fileno(a->f)) == 0;
#endif
    ok = (fclose(a->f) == 0) && ok;
    a->f = NULL;
    if (ok) return GPT3_OK;
    remove(a->tmp);
    GPT3_FREE(a->tmp);
    a->tmp = NULL;
    return GPT3_ERR_WRITE;
}

/* After a rename, the folder that holds the file is synced too, so that
   the rename itself is on disk before anything that follows it. The
   path is cut down to the folder's in place. */
static void gpt3__sync_folder(char *path) {
#ifdef GPT3__HAVE_POSIX
    char *slash = strrchr(path, '/');
    if (slash) slash[slash == path] = 0; /* "/x": the root */
    int fd = open(slash ? path : ".", O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
#else
    (void)path;
#endif
}

/* Put a closed temporary file in path's place (and free a->tmp). If that
   fails, the temporary file is removed, unless keep says it is needed. */
static int gpt3__atomic_rename(GPT3__AtomicFile *a, const char *path, int keep) {
#ifdef _WIN32
    remove(path); /* Windows' rename does not replace */
#endif
    int ok = rename(a->tmp, path) == 0;
    if (ok) gpt3__sync_folder(a->tmp); /* the same folder as path */
    else if (!keep) remove(a->tmp);
    GPT3_FREE(a->tmp);
    a->tmp = NULL;
    return ok ? GPT3_OK : GPT3_ERR_WRITE;
}

static int gpt3__atomic_commit(GPT3__AtomicFile *a, const char *path) {
    int rc = gpt3__atomic_close(a);
    return rc == GPT3_OK ? gpt3__atomic_rename(a, path, 0) : rc;
}

/* ======================================================================== */
/* Tokenizer: bytes, and GPT-2/GPT-3's byte-level BPE                       */
/* ======================================================================== */

/* Text becomes tokens in two stages, as in GPT-2 and GPT-3 (r50k_base):
   1. Pre-tokenization splits the bytes into pieces with GPT-2's pattern
        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
      (contractions; a run of letters, of numbers, or of other characters,
      each with at most one leading space; whitespace, leaving its last
      character to the word that follows). \s is Unicode's White_Space.
      A byte that is not part of well-formed UTF-8 counts as one character
      that is neither letter, number nor space, as U+FFFD would.
   2. Byte-pair encoding: each piece starts as its bytes, one token each;
      the adjacent pair that comes first in the merge list (vocab.bpe) is
      merged, again and again, until no pair of the list is left.
   Tokens are byte strings, so decoding is concatenation, and any byte
   string encodes and decodes back to itself. */

/* BEGIN GENERATED UNICODE TABLES (dev/gen_unicode_tables.py, Unicode 16.0.0) */
/* \p{L} letters (Lu Ll Lt Lm Lo): 677 ranges */
static const uint32_t gpt3__unicode_letters[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6},
    {0xD8, 0xF6}, {0xF8, 0x2C1}, {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE},
    {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A},
    {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
    {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A}, {0x66E, 0x66F},
    {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF},
    {0x710, 0x710}, {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5},
    {0x7FA, 0x7FA}, {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858},
    {0x860, 0x86A}, {0x870, 0x887}, {0x889, 0x88E}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D},
    {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980}, {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8},
    {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD}, {0x9CE, 0x9CE}, {0x9DC, 0x9DD},
    {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10}, {0xA13, 0xA28},
    {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E},
    {0xA72, 0xA74}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3},
    {0xAB5, 0xAB9}, {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C},
    {0xB0F, 0xB10}, {0xB13, 0xB28}, {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D},
    {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71}, {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90},
    {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F}, {0xBA3, 0xBA4}, {0xBA8, 0xBAA},
    {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28}, {0xC2A, 0xC39},
    {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5D, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDD, 0xCDE},
    {0xCE0, 0xCE1}, {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D},
    {0xD4E, 0xD4E}, {0xD54, 0xD56}, {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1},
    {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6}, {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46},
    {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3}, {0xEA5, 0xEA5}, {0xEA7, 0xEB0},
    {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF}, {0xF00, 0xF00},
    {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F},
    {0x1050, 0x1055}, {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070},
    {0x1075, 0x1081}, {0x108E, 0x108E}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD},
    {0x10D0, 0x10FA}, {0x10FC, 0x1248}, {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258},
    {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D}, {0x1290, 0x12B0}, {0x12B2, 0x12B5},
    {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6}, {0x12D8, 0x1310},
    {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1401, 0x166C}, {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8},
    {0x1700, 0x1711}, {0x171F, 0x1731}, {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770},
    {0x1780, 0x17B3}, {0x17D7, 0x17D7}, {0x17DC, 0x17DC}, {0x1820, 0x1878}, {0x1880, 0x1884},
    {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5}, {0x1900, 0x191E}, {0x1950, 0x196D},
    {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16}, {0x1A20, 0x1A54},
    {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF},
    {0x1BBA, 0x1BE5}, {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6},
    {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D}, {0x2D30, 0x2D67},
    {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6},
    {0x2DB8, 0x2DBE}, {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE},
    {0x2E2F, 0x2E2F}, {0x3005, 0x3006}, {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096},
    {0x309D, 0x309F}, {0x30A1, 0x30FA}, {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E},
    {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF}, {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD},
    {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E}, {0xA67F, 0xA69D},
    {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7CD}, {0xA7D0, 0xA7D1},
    {0xA7D3, 0xA7D3}, {0xA7D5, 0xA7DC}, {0xA7F2, 0xA801}, {0xA803, 0xA805}, {0xA807, 0xA80A},
    {0xA80C, 0xA822}, {0xA840, 0xA873}, {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB},
    {0xA8FD, 0xA8FE}, {0xA90A, 0xA925}, {0xA930, 0xA946}, {0xA960, 0xA97C}, {0xA984, 0xA9B2},
    {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF}, {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28},
    {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A}, {0xAA7E, 0xAAAF},
    {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD}, {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2},
    {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E},
    {0xAB11, 0xAB16}, {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69},
    {0xAB70, 0xABE2}, {0xAC00, 0xD7A3}, {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D},
    {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28},
    {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41}, {0xFB43, 0xFB44},
    {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB},
    {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE},
    {0xFFC2, 0xFFC7}, {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B},
    {0x1000D, 0x10026}, {0x10028, 0x1003A}, {0x1003C, 0x1003D}, {0x1003F, 0x1004D},
    {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10280, 0x1029C}, {0x102A0, 0x102D0},
    {0x10300, 0x1031F}, {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375},
    {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF}, {0x10400, 0x1049D},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563},
    {0x10570, 0x1057A}, {0x1057C, 0x1058A}, {0x1058C, 0x10592}, {0x10594, 0x10595},
    {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9}, {0x105BB, 0x105BC},
    {0x105C0, 0x105F3}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767},
    {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805},
    {0x10808, 0x10808}, {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C},
    {0x1083F, 0x10855}, {0x10860, 0x10876}, {0x10880, 0x1089E}, {0x108E0, 0x108F2},
    {0x108F4, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939}, {0x10980, 0x109B7},
    {0x109BE, 0x109BF}, {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7},
    {0x10AC9, 0x10AE4}, {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72},
    {0x10B80, 0x10B91}, {0x10C00, 0x10C48}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2},
    {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10E80, 0x10EA9},
    {0x10EB0, 0x10EB1}, {0x10EC2, 0x10EC4}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27},
    {0x10F30, 0x10F45}, {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6},
    {0x11003, 0x11037}, {0x11071, 0x11072}, {0x11075, 0x11075}, {0x11083, 0x110AF},
    {0x110D0, 0x110E8}, {0x11103, 0x11126}, {0x11144, 0x11144}, {0x11147, 0x11147},
    {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2}, {0x111C1, 0x111C4},
    {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B},
    {0x1123F, 0x11240}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D},
    {0x1128F, 0x1129D}, {0x1129F, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x1130C},
    {0x1130F, 0x11310}, {0x11313, 0x11328}, {0x1132A, 0x11330}, {0x11332, 0x11333},
    {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350}, {0x1135D, 0x11361},
    {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5},
    {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11400, 0x11434},
    {0x11447, 0x1144A}, {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5},
    {0x114C7, 0x114C7}, {0x11580, 0x115AE}, {0x115D8, 0x115DB}, {0x11600, 0x1162F},
    {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8}, {0x11700, 0x1171A},
    {0x11740, 0x11746}, {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906},
    {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916}, {0x11918, 0x1192F},
    {0x1193F, 0x1193F}, {0x11941, 0x11941}, {0x119A0, 0x119A7}, {0x119AA, 0x119D0},
    {0x119E1, 0x119E1}, {0x119E3, 0x119E3}, {0x11A00, 0x11A00}, {0x11A0B, 0x11A32},
    {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89}, {0x11A9D, 0x11A9D},
    {0x11AB0, 0x11AF8}, {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E},
    {0x11C40, 0x11C40}, {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09},
    {0x11D0B, 0x11D30}, {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68},
    {0x11D6A, 0x11D89}, {0x11D98, 0x11D98}, {0x11EE0, 0x11EF2}, {0x11F02, 0x11F02},
    {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0}, {0x12000, 0x12399},
    {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446},
    {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38},
    {0x16A40, 0x16A5E}, {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F},
    {0x16B40, 0x16B43}, {0x16B63, 0x16B77}, {0x16B7D, 0x16B8F}, {0x16D40, 0x16D6C},
    {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50}, {0x16F93, 0x16F9F},
    {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x17000, 0x187F7}, {0x18800, 0x18CD5},
    {0x18CFF, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE},
    {0x1B000, 0x1B122}, {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155},
    {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB}, {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C},
    {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454}, {0x1D456, 0x1D49C},
    {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC},
    {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505},
    {0x1D507, 0x1D50A}, {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539},
    {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544}, {0x1D546, 0x1D546}, {0x1D54A, 0x1D550},
    {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA}, {0x1D6DC, 0x1D6FA},
    {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E},
    {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB},
    {0x1DF00, 0x1DF1E}, {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C},
    {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E}, {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB},
    {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0}, {0x1E7E0, 0x1E7E6},
    {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4},
    {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F},
    {0x1EE21, 0x1EE22}, {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32},
    {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39}, {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42},
    {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B}, {0x1EE4D, 0x1EE4F},
    {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
    {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62},
    {0x1EE64, 0x1EE64}, {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77},
    {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E}, {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B},
    {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB}, {0x20000, 0x2A6DF},
    {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0},
    {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
};
/* \p{N} numbers (Nd Nl No): 144 ranges */
static const uint32_t gpt3__unicode_numbers[][2] = {
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9},
    {0x7C0, 0x7C9}, {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF},
    {0xB66, 0xB6F}, {0xB72, 0xB77}, {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF},
    {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF}, {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33},
    {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C}, {0x16EE, 0x16F0}, {0x17E0, 0x17E9},
    {0x17F0, 0x17F9}, {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA}, {0x1A80, 0x1A89},
    {0x1A90, 0x1A99}, {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59},
    {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189},
    {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007},
    {0x3021, 0x3029}, {0x3038, 0x303A}, {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F},
    {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF}, {0xA620, 0xA629}, {0xA6E6, 0xA6EF},
    {0xA830, 0xA835}, {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9}, {0xA9F0, 0xA9F9},
    {0xAA50, 0xAA59}, {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178},
    {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341},
    {0x1034A, 0x1034A}, {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F},
    {0x10879, 0x1087F}, {0x108A7, 0x108AF}, {0x108FB, 0x108FF}, {0x10916, 0x1091B},
    {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF}, {0x10A40, 0x10A48},
    {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F},
    {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39},
    {0x10D40, 0x10D49}, {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54},
    {0x10FC5, 0x10FCB}, {0x11052, 0x1106F}, {0x110F0, 0x110F9}, {0x11136, 0x1113F},
    {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9}, {0x11450, 0x11459},
    {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3},
    {0x11730, 0x1173B}, {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9},
    {0x11C50, 0x11C6C}, {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11F50, 0x11F59},
    {0x11FC0, 0x11FD4}, {0x12400, 0x1246E}, {0x16130, 0x16139}, {0x16A60, 0x16A69},
    {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61}, {0x16D70, 0x16D79},
    {0x16E80, 0x16E96}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3},
    {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9},
    {0x1E4F0, 0x1E4F9}, {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959},
    {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF}, {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D},
    {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};
/* \s = White_Space property (PropList.txt): 10 ranges */
static const uint32_t gpt3__unicode_spaces[][2] = {
    {0x9, 0xD}, {0x20, 0x20}, {0x85, 0x85}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};
/* END GENERATED UNICODE TABLES */

enum { GPT3__OTHER, GPT3__LETTER, GPT3__NUMBER, GPT3__SPACE };

static int gpt3__in_ranges(uint32_t cp, const uint32_t (*ranges)[2], size_t n) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ranges[mid][0]) hi = mid;
        else if (cp > ranges[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define GPT3__RANGES(table) table, sizeof(table) / sizeof(table[0])

static int gpt3__char_class(uint32_t cp) {
    if (cp < 128) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z') return GPT3__LETTER;
        if (cp >= '0' && cp <= '9') return GPT3__NUMBER;
        return (cp == ' ' || (cp >= 9 && cp <= 13)) ? GPT3__SPACE : GPT3__OTHER;
    }
    if (gpt3__in_ranges(cp, GPT3__RANGES(gpt3__unicode_letters))) return GPT3__LETTER;
    if (gpt3__in_ranges(cp, GPT3__RANGES(gpt3__unicode_numbers))) return GPT3__NUMBER;
    if (gpt3__in_ranges(cp, GPT3__RANGES(gpt3__unicode_spaces))) return GPT3__SPACE;
    return GPT3__OTHER;
}

/* One character of s[i..n): its code point (or -1 for a byte that is not
   part of well-formed UTF-8, Unicode Table 3-7), byte length and class. */
typedef struct { int32_t cp; int len, cls; } GPT3__Char;

static GPT3__Char gpt3__char_at(const unsigned char *s, size_t n, size_t i) {
    GPT3__Char c = {-1, 1, GPT3__OTHER};
    unsigned b0 = s[i];
    int len = b0 < 0x80 ? 1 : b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3
            : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
    if (len == 0 || i + (size_t)len > n) return c;
    /* the second byte's range depends on the first (no overlongs, no
       surrogates, nothing above U+10FFFF); later bytes are 80..BF */
    unsigned lo = b0 == 0xE0 ? 0xA0 : b0 == 0xF0 ? 0x90 : 0x80;
    unsigned hi = b0 == 0xED ? 0x9F : b0 == 0xF4 ? 0x8F : 0xBF;
    uint32_t cp = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; k++) {
        unsigned b = s[i + k];
        if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return c;
        cp = (cp << 6) | (b & 0x3F);
    }
    c.cp = (int32_t)cp;
    c.len = len;
    c.cls = gpt3__char_class(cp);
    return c;
}

/* End of the run of characters of class cls starting at i; *last gets
   the start of its last character. */
static size_t gpt3__run_end(const unsigned char *s, size_t n, size_t i, int cls, size_t *last) {
    *last = i;
    while (i < n) {
        GPT3__Char c = gpt3__char_at(s, n, i);
        if (c.cls != cls) break;
        *last = i;
        i += (size_t)c.len;
    }
    return i;
}

/* Length in bytes of the pre-token that starts at s[i] (i < n): the
   alternatives of the pattern, tried in its order. */
static size_t gpt3__pretoken_length(const unsigned char *s, size_t n, size_t i) {
    size_t last;
    GPT3__Char c = gpt3__char_at(s, n, i);
    if (s[i] == '\'' && i + 1 < n) {                         /* 's 't 'm 'd */
        unsigned a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;  /* 're 've 'll */
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    }
    if (c.cls != GPT3__SPACE)                                 /* \p{L}+ \p{N}+ [^\s\p{L}\p{N}]+ */
        return gpt3__run_end(s, n, i, c.cls, &last) - i;
    if (s[i] == ' ' && i + 1 < n) {                           /* the same after one space */
        GPT3__Char next = gpt3__char_at(s, n, i + 1);
        if (next.cls != GPT3__SPACE) return gpt3__run_end(s, n, i + 1, next.cls, &last) - i;
    }
    size_t end = gpt3__run_end(s, n, i, GPT3__SPACE, &last);
    if (end == n) return end - i;                             /* \s+ at the end */
    if (last > i) return last - i;                            /* \s+(?!\S) */
    return (size_t)c.len;                                     /* \s */
}

/* GPT-2's byte <-> character map: the 188 printable bytes stand for
   themselves; the other 68 (0..32, 127..160, 173: controls, space, DEL,
   no-break space, soft hyphen) become the characters 256 .. 323 in order,
   so that every token is a printable string in encoder.json and
   vocab.bpe. encoder.json lists the single-byte tokens in the same order:
   the printable bytes, then the others. */
static int gpt3__byte_printable(unsigned b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

static uint32_t gpt3__byte_char(unsigned b) {
    if (gpt3__byte_printable(b)) return b;
    return 256 + (b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 67);
}

/* The byte a character of a vocabulary file stands for, or -1. */
static int gpt3__char_byte(uint32_t cp) {
    if (cp < 256) return gpt3__byte_printable(cp) ? (int)cp : -1;
    uint32_t k = cp - 256;
    return k < 33 ? (int)k : k < 67 ? (int)(127 + k - 33) : k == 67 ? 173 : -1;
}

/* The byte of the k-th single-byte token (k = 0 .. 255) in that order. */
static unsigned char gpt3__byte_of_rank(int k) {
    if (k < 94) return (unsigned char)(33 + k);
    if (k < 106) return (unsigned char)(161 + k - 94);
    if (k < 188) return (unsigned char)(174 + k - 106);
    return (unsigned char)gpt3__char_byte((uint32_t)(256 + k - 188));
}

/* ---- Hash tables (open addressing; slot value 0 = empty) ---- */
static uint64_t gpt3__hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static size_t gpt3__table_size(size_t entries) {
    size_t size = 16;
    while (size < 2 * entries) size *= 2;
    return size;
}

/* Slot of the token with these bytes in tok->token_table (empty if none). */
static size_t gpt3__token_slot(const GPT3Tokenizer *tok, const unsigned char *p, size_t n) {
    size_t mask = tok->token_table_size - 1;
    size_t slot = (size_t)gpt3__hash_bytes(p, n) & mask;
    for (;; slot = (slot + 1) & mask) {
        uint32_t entry = tok->token_table[slot];
        if (entry == 0) return slot;
        size_t len = tok->offsets[entry] - tok->offsets[entry - 1];
        if (len == n && memcmp(tok->bytes + tok->offsets[entry - 1], p, n) == 0) return slot;
    }
}

static int gpt3__token_id(const GPT3Tokenizer *tok, const unsigned char *p, size_t n) {
    return (int)tok->token_table[gpt3__token_slot(tok, p, n)] - 1;
}

/* Slot of the merge (left, right) in tok->merge_table. */
static size_t gpt3__merge_slot(const GPT3Tokenizer *tok, int left, int right) {
    size_t mask = tok->merge_table_size - 1;
    size_t slot = (size_t)gpt3__mix64(((uint64_t)(uint32_t)left << 32) | (uint32_t)right) & mask;
    for (;; slot = (slot + 1) & mask) {
        uint32_t entry = tok->merge_table[slot];
        if (entry == 0) return slot;
        const int *m = tok->merges[entry - 1];
        if (m[0] == left && m[1] == right) return slot;
    }
}

/* Rank of merging (left, right), or -1 if the merge list has no such pair. */
static int gpt3__merge_rank(const GPT3Tokenizer *tok, int left, int right) {
    return (int)tok->merge_table[gpt3__merge_slot(tok, left, right)] - 1;
}

/* ---- Growing arrays ---- */
static int gpt3__reserve(void **data, size_t *capacity, size_t needed, size_t width) {
    if (needed <= *capacity) return GPT3_OK;
    size_t cap = *capacity ? *capacity : 64;
    while (cap < needed) cap *= 2;
    void *grown = GPT3_MALLOC(cap * width);
    if (!grown) return GPT3_ERR_NOMEM;
    if (*data) memcpy(grown, *data, *capacity * width);
    GPT3_FREE(*data);
    *data = grown;
    *capacity = cap;
    return GPT3_OK;
}

/* ---- Byte-pair encoding of one piece ----
   Each piece starts as one token per byte in a linked list. A min-heap
   holds every adjacent pair that the merge list knows, keyed by
   (rank, position): the lowest rank first, the leftmost of equal ranks.
   Pop a pair, skip it if one of its tokens has changed since it was
   pushed, merge it, push the two new pairs it forms with its neighbours.
   O(n log n) for a piece of n bytes, so a megabyte of spaces is no trap. */
static void gpt3__heap_push(uint64_t *heap, size_t *n, uint64_t key) {
    size_t i = (*n)++;
    for (; i > 0 && heap[(i - 1) / 2] > key; i = (i - 1) / 2) heap[i] = heap[(i - 1) / 2];
    heap[i] = key;
}

static uint64_t gpt3__heap_pop(uint64_t *heap, size_t *n) {
    uint64_t top = heap[0], last = heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && heap[child + 1] < heap[child]) child++;
        if (heap[child] >= last) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

static void gpt3__push_pair(GPT3Tokenizer *tok, int *sym, size_t *heap_n, int i, int j) {
    int rank = gpt3__merge_rank(tok, sym[i], sym[j]);
    if (rank >= 0) gpt3__heap_push(tok->heap, heap_n, ((uint64_t)rank << 32) | (uint32_t)i);
}

/* Appends the tokens of piece p[0..n) to *out. */
typedef struct { int *data; size_t count, capacity; } GPT3__Ints;

static int gpt3__bpe(GPT3Tokenizer *tok, const unsigned char *p, size_t n, GPT3__Ints *out) {
    if (gpt3__reserve((void **)&out->data, &out->capacity, out->count + n, sizeof(int)) ||
        gpt3__reserve((void **)&tok->links, &tok->links_capacity, 2 * n, sizeof(int)) ||
        gpt3__reserve((void **)&tok->heap, &tok->heap_capacity, 3 * n, sizeof(uint64_t)))
        return GPT3_ERR_NOMEM;
    int *sym = out->data + out->count, *next = tok->links, *prev = tok->links + n;
    size_t heap_n = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = tok->byte_token[p[i]];
        next[i] = (int)i + 1;
        prev[i] = (int)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) gpt3__push_pair(tok, sym, &heap_n, (int)i, (int)i + 1);
    while (heap_n > 0) {
        uint64_t key = gpt3__heap_pop(tok->heap, &heap_n);
        int i = (int)(uint32_t)key, rank = (int)(key >> 32), j = next[i];
        if (sym[i] < 0 || j >= (int)n || gpt3__merge_rank(tok, sym[i], sym[j]) != rank)
            continue; /* stale: a token of this pair was merged since */
        sym[i] = tok->merges[rank][2];
        sym[j] = -1;
        next[i] = next[j];
        if (next[i] < (int)n) prev[next[i]] = i;
        if (prev[i] >= 0) gpt3__push_pair(tok, sym, &heap_n, prev[i], i);
        if (next[i] < (int)n) gpt3__push_pair(tok, sym, &heap_n, i, next[i]);
    }
    for (size_t i = 0; i < n; i++) if (sym[i] >= 0) out->data[out->count++] = sym[i];
    return GPT3_OK;
}

/* ---- The cache of pieces already encoded ----
   Text repeats its words: a piece seen before is looked up, not merged
   again. Pieces up to 64 bytes; the cache empties itself when full. */
#define GPT3__CACHE_SLOTS (1 << 16)
#define GPT3__CACHE_MAX_PIECE 64

static int gpt3__bpe_cached(GPT3Tokenizer *tok, const unsigned char *p, size_t n, GPT3__Ints *out) {
    if (n > GPT3__CACHE_MAX_PIECE || !tok->cache) return gpt3__bpe(tok, p, n, out);
    uint64_t h = gpt3__hash_bytes(p, n);
    size_t slot = (size_t)h & (GPT3__CACHE_SLOTS - 1);
    for (;; slot = (slot + 1) & (GPT3__CACHE_SLOTS - 1)) {
        GPT3TokenCacheEntry *e = &tok->cache[slot];
        if (e->length == 0) break;
        if (e->hash == h && e->length == n && memcmp(tok->cache_arena + e->offset, p, n) == 0) {
            if (gpt3__reserve((void **)&out->data, &out->capacity, out->count + e->count, sizeof(int)))
                return GPT3_ERR_NOMEM;
            memcpy(out->data + out->count, tok->cache_arena + e->offset + n, e->count * sizeof(int));
            out->count += e->count;
            return GPT3_OK;
        }
    }
    size_t before = out->count;
    int rc = gpt3__bpe(tok, p, n, out);
    size_t count = out->count - before, need = tok->cache_used + n + count * sizeof(int);
    if (rc != GPT3_OK || need > tok->cache_arena_size || tok->cache_entries >= GPT3__CACHE_SLOTS / 2) {
        if (rc == GPT3_OK) { /* full: start afresh */
            memset(tok->cache, 0, GPT3__CACHE_SLOTS * sizeof(GPT3TokenCacheEntry));
            tok->cache_used = 0;
            tok->cache_entries = 0;
        }
        return rc;
    }
    GPT3TokenCacheEntry *e = &tok->cache[slot];
    e->hash = h;
    e->offset = tok->cache_used;
    e->length = n;
    e->count = count;
    memcpy(tok->cache_arena + tok->cache_used, p, n);
    memcpy(tok->cache_arena + tok->cache_used + n, out->data + before, count * sizeof(int));
    tok->cache_used = need;
    tok->cache_entries++;
    return GPT3_OK;
}

GPT3DEF int gpt3_encode(GPT3Tokenizer *tok, const void *text, size_t n, int **ids, size_t *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!tok || (!text && n) || !ids || !n_ids) return GPT3_ERR_ARGUMENT;
    const unsigned char *s = (const unsigned char *)text;
    GPT3__Ints out = {NULL, 0, 0};
    size_t guess = tok->is_bytes ? n + 1 : n / 3 + 16; /* bytes: exact; BPE: grows */
    int rc = gpt3__reserve((void **)&out.data, &out.capacity, guess, sizeof(int));
    if (tok->is_bytes) {
        for (size_t i = 0; rc == GPT3_OK && i < n; i++) out.data[out.count++] = s[i];
        n = 0;
    }
    for (size_t i = 0; rc == GPT3_OK && i < n;) {
        size_t len = gpt3__pretoken_length(s, n, i);
        rc = gpt3__bpe_cached(tok, s + i, len, &out);
        i += len;
    }
    if (rc != GPT3_OK) {
        GPT3_FREE(out.data);
        return rc;
    }
    *ids = out.data;
    *n_ids = out.count;
    return GPT3_OK;
}

GPT3DEF const unsigned char *gpt3_token_bytes(const GPT3Tokenizer *tok, int id, size_t *len) {
    if (!tok || id < 0 || id >= tok->vocab_size) return NULL;
    if (tok->is_bytes) {
        *len = 1;
        return tok->bytes + id;
    }
    *len = tok->offsets[id + 1] - tok->offsets[id];
    return tok->bytes + tok->offsets[id];
}

GPT3DEF int gpt3_decode(const GPT3Tokenizer *tok, const int *ids, size_t n,
                        unsigned char **text, size_t *n_text) {
    if (text) *text = NULL;
    if (n_text) *n_text = 0;
    if (!tok || (!ids && n) || !text || !n_text) return GPT3_ERR_ARGUMENT;
    size_t total = 0, len = 0;
    for (size_t i = 0; i < n; i++) {
        if (!gpt3_token_bytes(tok, ids[i], &len)) return GPT3_ERR_TOKEN;
        total += len;
    }
    unsigned char *out = (unsigned char *)GPT3_MALLOC(total + 1);
    if (!out) return GPT3_ERR_NOMEM;
    total = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = gpt3_token_bytes(tok, ids[i], &len);
        memcpy(out + total, b, len);
        total += len;
    }
    out[total] = 0;
    *text = out;
    *n_text = total;
    return GPT3_OK;
}

/* ---- Building a tokenizer ----
   Loading (encoder.json + vocab.bpe) and training both add the tokens in
   id order, then the merges in rank order, then index the merges. */
static int gpt3__tokenizer_begin(GPT3Tokenizer *tok, size_t max_tokens) {
    memset(tok, 0, sizeof(*tok));
    tok->eot = -1;
    tok->token_table_size = gpt3__table_size(max_tokens);
    tok->token_table = (uint32_t *)GPT3_CALLOC(tok->token_table_size, sizeof(uint32_t));
    tok->offsets = (size_t *)GPT3_CALLOC(max_tokens + 1, sizeof(size_t));
    tok->offsets_capacity = max_tokens + 1;
    return tok->token_table && tok->offsets ? GPT3_OK : GPT3_ERR_NOMEM;
}

/* Append a token with these bytes; its id is the next one. */
static int gpt3__add_token(GPT3Tokenizer *tok, const unsigned char *p, size_t n) {
    size_t V = (size_t)tok->vocab_size;
    if (V + 2 > tok->offsets_capacity) return GPT3_ERR_VOCAB; /* more than announced */
    size_t slot = gpt3__token_slot(tok, p, n);
    if (tok->token_table[slot] != 0) return GPT3_ERR_VOCAB;   /* the same token twice */
    if (gpt3__reserve((void **)&tok->bytes, &tok->bytes_capacity, tok->offsets[V] + n, 1))
        return GPT3_ERR_NOMEM;
    memcpy(tok->bytes + tok->offsets[V], p, n);
    tok->offsets[V + 1] = tok->offsets[V] + n;
    tok->token_table[slot] = (uint32_t)V + 1;
    tok->vocab_size++;
    return GPT3_OK;
}

static int gpt3__add_merge(GPT3Tokenizer *tok, int left, int right, int merged) {
    if (gpt3__reserve((void **)&tok->merges, &tok->merges_capacity, (size_t)tok->num_merges + 1,
                      sizeof(tok->merges[0])))
        return GPT3_ERR_NOMEM;
    tok->merges[tok->num_merges][0] = left;
    tok->merges[tok->num_merges][1] = right;
    tok->merges[tok->num_merges++][2] = merged;
    return GPT3_OK;
}

/* Last step: the merge table, the single bytes' tokens, <|endoftext|>,
   the encoding cache and the fingerprint (a hash of every token's bytes
   and every merge: two tokenizers that differ anywhere differ here). */
static int gpt3__tokenizer_finish(GPT3Tokenizer *tok) {
    size_t V = (size_t)tok->vocab_size;
    tok->merge_table_size = gpt3__table_size((size_t)tok->num_merges);
    tok->merge_table = (uint32_t *)GPT3_CALLOC(tok->merge_table_size, sizeof(uint32_t));
    tok->cache = (GPT3TokenCacheEntry *)GPT3_CALLOC(GPT3__CACHE_SLOTS, sizeof(GPT3TokenCacheEntry));
    tok->cache_arena_size = (size_t)16 << 20;
    tok->cache_arena = (unsigned char *)GPT3_MALLOC(tok->cache_arena_size);
    if (!tok->merge_table || !tok->cache || !tok->cache_arena) return GPT3_ERR_NOMEM;
    uint64_t fingerprint = gpt3__hash_bytes(tok->bytes, tok->offsets[V]);
    for (size_t i = 0; i < V; i++)
        fingerprint = (fingerprint ^ (tok->offsets[i + 1] - tok->offsets[i])) * 0x100000001b3ULL;
    for (unsigned b = 0; b < 256; b++) {
        unsigned char byte = (unsigned char)b;
        tok->byte_token[b] = gpt3__token_id(tok, &byte, 1);
        if (tok->byte_token[b] < 0) return GPT3_ERR_VOCAB; /* every byte needs a token */
    }
    for (int r = 0; r < tok->num_merges; r++) {
        int *m = tok->merges[r];
        size_t slot = gpt3__merge_slot(tok, m[0], m[1]);
        if (tok->merge_table[slot] == 0) tok->merge_table[slot] = (uint32_t)r + 1;
        fingerprint = (fingerprint ^ ((uint64_t)m[0] << 32 ^ (uint64_t)m[2])) * 0x100000001b3ULL;
    }
    const char *eot = "<|endoftext|>";
    tok->eot = gpt3__token_id(tok, (const unsigned char *)eot, strlen(eot));
    tok->id = (uint32_t)(fingerprint ^ (fingerprint >> 32));
    return GPT3_OK;
}

GPT3DEF int gpt3_tokenizer_bytes(GPT3Tokenizer *tok) {
    if (!tok) return GPT3_ERR_ARGUMENT;
    memset(tok, 0, sizeof(*tok));
    tok->is_bytes = 1;
    tok->vocab_size = 256;
    tok->eot = -1;
    tok->id = 0x42595445; /* "BYTE" */
    tok->bytes = (unsigned char *)GPT3_MALLOC(256);
    if (!tok->bytes) return GPT3_ERR_NOMEM;
    for (int b = 0; b < 256; b++) tok->bytes[b] = (unsigned char)b;
    return GPT3_OK;
}

GPT3DEF void gpt3_tokenizer_free(GPT3Tokenizer *tok) {
    if (!tok) return;
    GPT3_FREE(tok->bytes);
    GPT3_FREE(tok->offsets);
    GPT3_FREE(tok->merges);
    GPT3_FREE(tok->token_table);
    GPT3_FREE(tok->merge_table);
    GPT3_FREE(tok->links);
    GPT3_FREE(tok->heap);
    GPT3_FREE(tok->cache);
    GPT3_FREE(tok->cache_arena);
    memset(tok, 0, sizeof(*tok));
}

/* ---- encoder.json and vocab.bpe ----
   encoder.json maps each token, written as GPT-2's characters, to its id:
   {"!": 0, "\"": 1, ..., "\u0120the": 262, ...}. vocab.bpe lists the
   merges by rank, one "left right" pair a line, after a "#version" line. */
typedef struct { unsigned char *data; size_t count, capacity; } GPT3__Bytes;

static int gpt3__read_file(const char *path, GPT3__Bytes *out) {
    FILE *f;
    unsigned char chunk[65536];
    size_t got;
    memset(out, 0, sizeof(*out));
    int rc_open = gpt3__open_file(path, 0, &f);
    if (rc_open != GPT3_OK) return rc_open;
    int rc = GPT3_OK;
    while (rc == GPT3_OK && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = gpt3__reserve((void **)&out->data, &out->capacity, out->count + got + 1, 1);
        if (rc == GPT3_OK) memcpy(out->data + out->count, chunk, got);
        out->count += got;
    }
    if (rc == GPT3_OK && ferror(f)) rc = GPT3_ERR_READ;
    if (rc == GPT3_OK) rc = gpt3__reserve((void **)&out->data, &out->capacity, out->count + 1, 1);
    if (rc == GPT3_OK) out->data[out->count] = 0;
    fclose(f);
    return rc;
}

/* A JSON string at *p (just after its opening quote), as the bytes its
   characters stand for, into out; *p ends after the closing quote.
   GPT3_ERR_VOCAB if it is malformed. */
static int gpt3__json_token(const unsigned char **p, const unsigned char *end, GPT3__Bytes *out) {
    out->count = 0;
    while (*p < end && **p != '"') {
        uint32_t cp;
        if (**p == '\\') {
            const unsigned char *e = *p + 1;
            if (e >= end) return GPT3_ERR_VOCAB;
            if (*e == 'u') {
                if (end - e < 5) return GPT3_ERR_VOCAB;
                char hex[5] = {(char)e[1], (char)e[2], (char)e[3], (char)e[4], 0};
                char *stop;
                cp = (uint32_t)strtoul(hex, &stop, 16);
                if (stop != hex + 4) return GPT3_ERR_VOCAB;
                *p = e + 5;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *at = strchr(from, *e);
                if (!at || !*e) return GPT3_ERR_VOCAB;
                cp = (unsigned char)to[at - from];
                *p = e + 1;
            }
        } else {
            GPT3__Char c = gpt3__char_at(*p, (size_t)(end - *p), 0);
            if (c.cp < 0) return GPT3_ERR_VOCAB;
            cp = (uint32_t)c.cp;
            *p += c.len;
        }
        int b = gpt3__char_byte(cp);
        if (b < 0) return GPT3_ERR_VOCAB;
        if (gpt3__reserve((void **)&out->data, &out->capacity, out->count + 1, 1)) return GPT3_ERR_NOMEM;
        out->data[out->count++] = (unsigned char)b;
    }
    if (*p >= end) return GPT3_ERR_VOCAB;
    (*p)++;
    return GPT3_OK;
}

static const unsigned char *gpt3__skip_space(const unsigned char *p, const unsigned char *end, int *line) {
    for (; p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'); p++) *line += *p == '\n';
    return p;
}

typedef struct { long id; size_t offset, length; } GPT3__Entry;

static int gpt3__by_id(const void *a, const void *b) {
    long x = ((const GPT3__Entry *)a)->id, y = ((const GPT3__Entry *)b)->id;
    return (x > y) - (x < y);
}

/* Parse encoder.json into entries (id, bytes in pool). */
static int gpt3__parse_encoder(const GPT3__Bytes *file, GPT3__Entry **entries, size_t *n,
                               GPT3__Bytes *pool, int *line) {
    const unsigned char *p = file->data, *end = file->data + file->count;
    GPT3__Bytes token = {NULL, 0, 0};
    size_t capacity = 0;
    int rc = GPT3_ERR_VOCAB;
    *line = 1;
    *n = 0;
    p = gpt3__skip_space(p, end, line);
    if (p >= end || *p++ != '{') goto done;
    for (;;) {
        p = gpt3__skip_space(p, end, line);
        if (p < end && *p == '}' && *n == 0) break;
        if (p >= end || *p++ != '"') goto done;
        if ((rc = gpt3__json_token(&p, end, &token)) != GPT3_OK) goto done;
        rc = GPT3_ERR_VOCAB;
        if (token.count == 0) goto done; /* a token is at least one byte */
        p = gpt3__skip_space(p, end, line);
        if (p >= end || *p++ != ':') goto done;
        p = gpt3__skip_space(p, end, line);
        char *stop;
        long id = strtol((const char *)p, &stop, 10);
        if (stop == (const char *)p || id < 0 || id > (1 << 24)) goto done;
        p = (const unsigned char *)stop;
        if (gpt3__reserve((void **)entries, &capacity, *n + 1, sizeof(GPT3__Entry)) ||
            gpt3__reserve((void **)&pool->data, &pool->capacity, pool->count + token.count + 1, 1)) {
            rc = GPT3_ERR_NOMEM;
            goto done;
        }
        (*entries)[*n].id = id;
        (*entries)[*n].offset = pool->count;
        (*entries)[(*n)++].length = token.count;
        memcpy(pool->data + pool->count, token.data, token.count);
        pool->count += token.count;
        p = gpt3__skip_space(p, end, line);
        if (p < end && *p == ',') { p++; continue; }
        if (p < end && *p == '}') break;
        goto done;
    }
    p = gpt3__skip_space(p + 1, end, line);
    if (p == end) rc = GPT3_OK; /* nothing after the closing brace */
done:
    GPT3_FREE(token.data);
    return rc;
}

/* Add the merges of vocab.bpe; each must join two tokens into a third. */
static int gpt3__parse_merges(GPT3Tokenizer *tok, const GPT3__Bytes *file) {
    const unsigned char *p = file->data, *end = file->data + file->count;
    GPT3__Bytes left = {NULL, 0, 0}, right = {NULL, 0, 0};
    int rc = GPT3_OK;
    for (int line = 1; rc == GPT3_OK && p < end; line++) {
        const unsigned char *eol = (const unsigned char *)memchr(p, '\n', (size_t)(end - p));
        const unsigned char *stop = eol ? eol : end, *space;
        if (stop > p && stop[-1] == '\r') stop--;
        tok->error_line = line;
        if (stop == p || (line == 1 && *p == '#')) { p = eol ? eol + 1 : end; continue; }
        space = (const unsigned char *)memchr(p, ' ', (size_t)(stop - p));
        rc = GPT3_ERR_VOCAB;
        if (space && space > p && space + 1 < stop && !memchr(space + 1, ' ', (size_t)(stop - space - 1))) {
            GPT3__Bytes *parts[2] = {&left, &right};
            const unsigned char *from[2] = {p, space + 1}, *to[2] = {space, stop};
            int ok = 1;
            for (int k = 0; k < 2; k++) { /* room for both halves in left */
                parts[k]->count = 0;
                if (gpt3__reserve((void **)&parts[k]->data, &parts[k]->capacity,
                                  (size_t)(stop - p) + 2, 1)) {
                    rc = GPT3_ERR_NOMEM;
                    ok = 0;
                }
                for (const unsigned char *c = from[k]; ok && c < to[k];) {
                    GPT3__Char ch = gpt3__char_at(c, (size_t)(to[k] - c), 0);
                    int b = ch.cp < 0 ? -1 : gpt3__char_byte((uint32_t)ch.cp);
                    ok = b >= 0;
                    if (ok) parts[k]->data[parts[k]->count++] = (unsigned char)b;
                    c += ch.len;
                }
            }
            int a = ok ? gpt3__token_id(tok, left.data, left.count) : -1;
            int b = ok ? gpt3__token_id(tok, right.data, right.count) : -1;
            if (ok) memcpy(left.data + left.count, right.data, right.count);
            int merged = ok ? gpt3__token_id(tok, left.data, left.count + right.count) : -1;
            if (a >= 0 && b >= 0 && merged >= 0) rc = gpt3__add_merge(tok, a, b, merged);
        }
        p = eol ? eol + 1 : end;
    }
    if (rc == GPT3_OK) tok->error_line = 0;
    GPT3_FREE(left.data);
    GPT3_FREE(right.data);
    return rc;
}

/* Every token of more than one byte must be what some merge makes (but
   special tokens, "<|...|>"): a vocab.bpe cut short leaves tokens no merge
   makes, and text would be encoded other than as its author's files do. */
static int gpt3__every_token_merged(GPT3Tokenizer *tok) {
    unsigned char *made = (unsigned char *)GPT3_CALLOC((size_t)tok->vocab_size, 1);
    if (!made) return GPT3_ERR_NOMEM;
    for (int r = 0; r < tok->num_merges; r++) made[tok->merges[r][2]] = 1;
    int rc = GPT3_OK;
    for (int i = 0; rc == GPT3_OK && i < tok->vocab_size; i++) {
        const unsigned char *p = tok->bytes + tok->offsets[i];
        size_t n = tok->offsets[i + 1] - tok->offsets[i];
        int special = n >= 4 && memcmp(p, "<|", 2) == 0 && memcmp(p + n - 2, "|>", 2) == 0;
        if (n > 1 && !made[i] && !special) rc = GPT3_ERR_VOCAB;
    }
    GPT3_FREE(made);
    return rc;
}

GPT3DEF int gpt3_tokenizer_load(GPT3Tokenizer *tok, const char *encoder_json, const char *vocab_bpe) {
    if (tok) memset(tok, 0, sizeof(*tok));
    if (!tok || !encoder_json || !vocab_bpe) return GPT3_ERR_ARGUMENT;
    GPT3__Bytes encoder = {NULL, 0, 0}, merges = {NULL, 0, 0}, pool = {NULL, 0, 0};
    GPT3__Entry *entries = NULL;
    size_t n = 0;
    int line = 0, rc = gpt3__read_file(encoder_json, &encoder);
    if (rc == GPT3_OK) rc = gpt3__read_file(vocab_bpe, &merges);
    if (rc == GPT3_OK) rc = gpt3__parse_encoder(&encoder, &entries, &n, &pool, &line);
    if (rc == GPT3_OK) {
        int error_line = line;
        if (n) qsort(entries, n, sizeof(GPT3__Entry), gpt3__by_id);
        rc = n >= 256 && n <= (1 << 24) ? gpt3__tokenizer_begin(tok, n) : GPT3_ERR_VOCAB;
        for (size_t i = 0; rc == GPT3_OK && i < n; i++)   /* ids must be 0 .. n-1 */
            rc = entries[i].id == (long)i ? gpt3__add_token(tok, pool.data + entries[i].offset,
                                                            entries[i].length) : GPT3_ERR_VOCAB;
        if (rc == GPT3_OK) rc = gpt3__parse_merges(tok, &merges);
        else tok->error_line = error_line;
    } else {
        tok->error_line = line;
    }
    if (rc == GPT3_OK) rc = gpt3__tokenizer_finish(tok);
    if (rc == GPT3_OK) rc = gpt3__every_token_merged(tok);
    GPT3_FREE(encoder.data);
    GPT3_FREE(merges.data);
    GPT3_FREE(pool.data);
    GPT3_FREE(entries);
    if (rc != GPT3_OK) {
        line = tok->error_line;
        gpt3_tokenizer_free(tok);
        tok->error_line = line;
    }
    return rc;
}

/* Append the UTF-8 of GPT-2's characters for bytes p[0..n) to out;
   json: escape as JSON does (\uXXXX beyond ASCII, \" and \\). */
static int gpt3__put_token(GPT3__Bytes *out, const unsigned char *p, size_t n, int json) {
    if (gpt3__reserve((void **)&out->data, &out->capacity, out->count + 6 * n + 64, 1))
        return GPT3_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = gpt3__byte_char(p[i]);
        unsigned char *o = out->data + out->count;
        if (json && (c == '"' || c == '\\')) out->count += (size_t)sprintf((char *)o, "\\%c", (int)c);
        else if (json && c >= 127) out->count += (size_t)sprintf((char *)o, "\\u%04x", (unsigned)c);
        else if (c < 128) out->data[out->count++] = (unsigned char)c;
        else {
            o[0] = (unsigned char)(0xC0 | (c >> 6));
            o[1] = (unsigned char)(0x80 | (c & 0x3F));
            out->count += 2;
        }
    }
    return GPT3_OK;
}

/* content, written to path's temporary file and closed, not yet renamed
   into place (file->tmp is NULL if that failed). */
static int gpt3__write_unplaced(GPT3__AtomicFile *file, const char *path, const GPT3__Bytes *content) {
    int rc = gpt3__atomic_open(file, path);
    if (rc != GPT3_OK) return rc;
    file->ok = fwrite(content->data, 1, content->count, file->f) == content->count;
    return gpt3__atomic_close(file);
}

GPT3DEF int gpt3_tokenizer_save(const GPT3Tokenizer *tok, const char *encoder_json,
                                const char *vocab_bpe) {
    if (!tok || tok->is_bytes || !tok->offsets || !encoder_json || !vocab_bpe)
        return GPT3_ERR_ARGUMENT;
    GPT3__Bytes json = {NULL, 0, 0}, bpe = {NULL, 0, 0};
    int rc = GPT3_OK;
    for (int i = 0; rc == GPT3_OK && i < tok->vocab_size; i++) {
        rc = gpt3__reserve((void **)&json.data, &json.capacity, json.count + 32, 1);
        if (rc == GPT3_OK) json.count += (size_t)sprintf((char *)json.data + json.count, "%s\"", i ? ", " : "{");
        if (rc == GPT3_OK) rc = gpt3__put_token(&json, tok->bytes + tok->offsets[i],
                                                tok->offsets[i + 1] - tok->offsets[i], 1);
        if (rc == GPT3_OK) json.count += (size_t)sprintf((char *)json.data + json.count, "\": %d", i);
    }
    rc = rc ? rc : gpt3__reserve((void **)&json.data, &json.capacity, json.count + 2, 1);
    if (rc == GPT3_OK) json.data[json.count++] = '}';
    rc = rc ? rc : gpt3__reserve((void **)&bpe.data, &bpe.capacity, 32, 1);
    if (rc == GPT3_OK) bpe.count = (size_t)sprintf((char *)bpe.data, "#version: 0.2\n");
    for (int r = 0; rc == GPT3_OK && r < tok->num_merges; r++) {
        for (int k = 0; rc == GPT3_OK && k < 2; k++) {
            int id = tok->merges[r][k];
            rc = gpt3__put_token(&bpe, tok->bytes + tok->offsets[id], tok->offsets[id + 1] - tok->offsets[id], 0);
            if (rc == GPT3_OK) bpe.data[bpe.count++] = k == 0 ? ' ' : '\n';
        }
    }
    /* Both files are written in full before either takes its place, so a
       save that fails leaves the previous pair as it was. */
    GPT3__AtomicFile json_file = {NULL, NULL, 0}, bpe_file = {NULL, NULL, 0};
    if (rc == GPT3_OK) rc = gpt3__write_unplaced(&json_file, encoder_json, &json);
    if (rc == GPT3_OK) rc = gpt3__write_unplaced(&bpe_file, vocab_bpe, &bpe);
    if (rc == GPT3_OK) rc = gpt3__atomic_rename(&bpe_file, vocab_bpe, 0);
    if (rc == GPT3_OK) rc = gpt3__atomic_rename(&json_file, encoder_json, 0);
    GPT3__AtomicFile *unplaced[2] = {&json_file, &bpe_file};
    for (int k = 0; k < 2; k++) {
        if (unplaced[k]->tmp) remove(unplaced[k]->tmp);
        GPT3_FREE(unplaced[k]->tmp);
    }
    GPT3_FREE(json.data);
    GPT3_FREE(bpe.data);
    return rc;
}

/* ---- Training a byte-level BPE (the algorithm GPT-2's vocabulary came from) ----
   Split the text into pieces with the same pattern and count each distinct
   piece. Every piece starts as its bytes. Then, until the vocabulary is
   full: count every adjacent pair of tokens over all pieces (times each
   piece's count), make the most frequent pair a new token (ties: the pair
   of smallest ids), and merge it everywhere. */
typedef struct { uint64_t hash; size_t offset, length, count; } GPT3__Piece;

/* Count the distinct pieces of the text into a growing hash table. */
static int gpt3__count_pieces(const unsigned char *s, size_t n, GPT3__Piece **table, size_t *size,
                              size_t *used) {
    *size = 1024;
    *used = 0;
    *table = (GPT3__Piece *)GPT3_CALLOC(*size, sizeof(GPT3__Piece));
    for (size_t i = 0; *table && i < n;) {
        size_t len = gpt3__pretoken_length(s, n, i), slot;
        uint64_t h = gpt3__hash_bytes(s + i, len);
        for (slot = (size_t)h & (*size - 1); (*table)[slot].length; slot = (slot + 1) & (*size - 1))
            if ((*table)[slot].hash == h && (*table)[slot].length == len &&
                memcmp(s + (*table)[slot].offset, s + i, len) == 0) break;
        GPT3__Piece *e = &(*table)[slot];
        if (!e->length) { e->hash = h; e->offset = i; e->length = len; (*used)++; }
        e->count++;
        i += len;
        if (2 * *used > *size) { /* grow: rehash into a table twice the size */
            GPT3__Piece *old = *table;
            size_t old_size = *size;
            *size *= 2;
            *table = (GPT3__Piece *)GPT3_CALLOC(*size, sizeof(GPT3__Piece));
            for (size_t k = 0; *table && k < old_size; k++) {
                if (!old[k].length) continue;
                for (slot = (size_t)old[k].hash & (*size - 1); (*table)[slot].length;) slot = (slot + 1) & (*size - 1);
                (*table)[slot] = old[k];
            }
            GPT3_FREE(old);
        }
    }
    return *table ? GPT3_OK : GPT3_ERR_NOMEM;
}

typedef struct { int left, right; size_t count; } GPT3__Pair;

/* The most frequent adjacent pair over all words; count 0 if none. */
static GPT3__Pair gpt3__best_pair(const int *syms, const size_t *start, const size_t *length,
                                  const size_t *count, size_t words, GPT3__Pair *table,
                                  size_t size, size_t *used_slots) {
    GPT3__Pair best = {0, 0, 0};
    size_t n_used = 0;
    for (size_t w = 0; w < words; w++) {
        for (size_t i = start[w]; i + 1 < start[w] + length[w]; i++) {
            uint64_t key = ((uint64_t)(uint32_t)syms[i] << 32) | (uint32_t)syms[i + 1];
            size_t slot = (size_t)gpt3__mix64(key) & (size - 1);
            while (table[slot].count && (table[slot].left != syms[i] || table[slot].right != syms[i + 1]))
                slot = (slot + 1) & (size - 1);
            if (!table[slot].count) {
                table[slot].left = syms[i];
                table[slot].right = syms[i + 1];
                used_slots[n_used++] = slot;
            }
            table[slot].count += count[w];
        }
    }
    for (size_t k = 0; k < n_used; k++) {
        GPT3__Pair *p = &table[used_slots[k]];
        if (p->count > best.count || (p->count == best.count &&
            (p->left < best.left || (p->left == best.left && p->right < best.right))))
            best = *p;
        p->count = 0;
    }
    return best;
}

GPT3DEF int gpt3_tokenizer_train(GPT3Tokenizer *tok, const void *text, size_t n, int vocab_size) {
    if (tok) memset(tok, 0, sizeof(*tok));
    if (!tok || (!text && n) || vocab_size < 257 || vocab_size > 65536) return GPT3_ERR_ARGUMENT;
    const unsigned char *s = (const unsigned char *)text;
    GPT3__Piece *pieces = NULL;
    size_t table_size = 0, words = 0, total = 0;
    int rc = gpt3__tokenizer_begin(tok, (size_t)vocab_size);
    int byte_id[256];
    for (int k = 0; rc == GPT3_OK && k < 256; k++) {
        unsigned char b = gpt3__byte_of_rank(k);
        byte_id[b] = k;
        rc = gpt3__add_token(tok, &b, 1);
    }
    if (rc == GPT3_OK) rc = gpt3__count_pieces(s, n, &pieces, &table_size, &words);
    for (size_t k = 0; pieces && k < table_size; k++) total += pieces[k].length;
    int *syms = (int *)GPT3_MALLOC((total + 1) * sizeof(int));
    size_t *start = (size_t *)GPT3_MALLOC((words + 1) * 3 * sizeof(size_t));
    size_t pair_size = gpt3__table_size(total + 1);
    GPT3__Pair *pairs = (GPT3__Pair *)GPT3_CALLOC(pair_size, sizeof(GPT3__Pair));
    size_t *used_slots = (size_t *)GPT3_MALLOC((total + 1) * sizeof(size_t));
    if (rc == GPT3_OK && (!syms || !start || !pairs || !used_slots)) rc = GPT3_ERR_NOMEM;
    size_t *length = start + words + 1, *count = length + words + 1, w = 0, at = 0;
    for (size_t k = 0; rc == GPT3_OK && k < table_size; k++) { /* table order: deterministic */
        if (!pieces[k].length) continue;
        start[w] = at;
        length[w] = pieces[k].length;
        count[w++] = pieces[k].count;
        for (size_t i = 0; i < pieces[k].length; i++) syms[at++] = byte_id[s[pieces[k].offset + i]];
    }
    while (rc == GPT3_OK && tok->vocab_size < vocab_size - 1) {
        GPT3__Pair best = gpt3__best_pair(syms, start, length, count, words, pairs, pair_size, used_slots);
        if (best.count < 2) break; /* no pair repeats: the text has no more to teach */
        size_t la = tok->offsets[best.left + 1] - tok->offsets[best.left];
        size_t lb = tok->offsets[best.right + 1] - tok->offsets[best.right];
        unsigned char *joined = (unsigned char *)GPT3_MALLOC(la + lb);
        if (!joined) { rc = GPT3_ERR_NOMEM; break; }
        memcpy(joined, tok->bytes + tok->offsets[best.left], la);
        memcpy(joined + la, tok->bytes + tok->offsets[best.right], lb);
        int merged = gpt3__token_id(tok, joined, la + lb);
        if (merged < 0) { merged = tok->vocab_size; rc = gpt3__add_token(tok, joined, la + lb); }
        GPT3_FREE(joined);
        if (rc == GPT3_OK) rc = gpt3__add_merge(tok, best.left, best.right, merged);
        for (size_t v = 0; rc == GPT3_OK && v < words; v++) { /* merge it everywhere */
            size_t out = start[v];
            for (size_t i = start[v]; i < start[v] + length[v]; i++) {
                int pair = i + 1 < start[v] + length[v] && syms[i] == best.left && syms[i + 1] == best.right;
                syms[out++] = pair ? merged : syms[i];
                i += (size_t)pair;
            }
            length[v] = out - start[v];
        }
    }
    if (rc == GPT3_OK) rc = gpt3__add_token(tok, (const unsigned char *)"<|endoftext|>", 13);
    if (rc == GPT3_OK) rc = gpt3__tokenizer_finish(tok);
    GPT3_FREE(pieces);
    GPT3_FREE(syms);
    GPT3_FREE(start);
    GPT3_FREE(pairs);
    GPT3_FREE(used_slots);
    if (rc != GPT3_OK) gpt3_tokenizer_free(tok);
    return rc;
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
    if (t) memset(t, 0, sizeof(*t));
    if (!t || !path) return GPT3_ERR_ARGUMENT;
    FILE *f;
    int rc_open = gpt3__open_file(path, 1, &f);
    if (rc_open != GPT3_OK) return rc_open;
    uint32_t header[64];
    size_t got = gpt3__read_le(f, header, 64, 4);
    int rc = GPT3_OK;
    uint64_t count = got == 64 ? gpt3__join64(header + 4) : 0;
    if (got < 64 || header[0] != GPT3__TOKENS_MAGIC || header[1] != 1 ||
        header[2] < 1 || header[2] > 65536 || count > ((uint64_t)1 << 40) ||
        count > SIZE_MAX / 4)
        rc = GPT3_ERR_DATA;
    else if (gpt3__check_length(f, 2.0 * (double)count) != GPT3_OK)
        rc = GPT3_ERR_DATA;
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
    if (dl) memset(dl, 0, sizeof(*dl));
    if (!dl || !data || !data->tokens) return GPT3_ERR_ARGUMENT;
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
    if (!dl || !dl->inputs) return;
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


/* The checkpoint, written in full to path.tmp (not yet in path's place).
   LoRA's adapters have no place in it: they must be merged first. */
static int gpt3__write_checkpoint(GPT3__AtomicFile *file, const GPT3 *m, const char *path) {
    if (m->lora) return GPT3_ERR_LORA;
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
    int rc = gpt3__atomic_open(file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(file, header, GPT3__HEADER_INTS, 4);
    gpt3__atomic_write_le(file, m->params, m->num_parameters, 4);
    return gpt3__atomic_close(file);
}

GPT3DEF int gpt3_save(const GPT3 *m, const char *checkpoint_path) {
    if (!m || !m->params || !checkpoint_path) return GPT3_ERR_ARGUMENT;
    GPT3__AtomicFile file;
    int rc = gpt3__write_checkpoint(&file, m, checkpoint_path);
    return rc == GPT3_OK ? gpt3__atomic_rename(&file, checkpoint_path, 0) : rc;
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
    if (m) memset(m, 0, sizeof(*m));
    if (!m || !checkpoint_path) return GPT3_ERR_ARGUMENT;
    FILE *f;
    int rc = gpt3__open_file(checkpoint_path, 1, &f);
    if (rc != GPT3_OK) return rc;
    GPT3Config cfg = {0, 0, 0, 0, 0, 0};
    rc = gpt3__read_header(f, &cfg);
    /* the size, before allocating what a corrupt header asks for */
    if (rc == GPT3_OK) rc = gpt3__check_length(f, (double)gpt3_num_parameters(&cfg) * sizeof(float));
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
   (2 words), data RNG state (2 words), 1 if AdamW moments follow, a
   fingerprint of the parameters, the tokenizer's fingerprint -- then
   AdamW's m and v, num_parameters float32 each. */
#define GPT3__STATE_MAGIC 0x54535447 /* "GTST" */

static uint32_t gpt3__fingerprint(const float *x, size_t n) {
    uint64_t h = gpt3__hash_bytes((const unsigned char *)x, n * sizeof(float));
    return (uint32_t)(h ^ (h >> 32));
}

static uint32_t gpt3__params_fingerprint(const GPT3 *m) { return gpt3__fingerprint(m->params, m->num_parameters); }

/* Writes AdamW's m, then v, num_parameters floats each, to file. A model
   that holds them all writes its own (below); one that holds a share
   (ZeRO-1) is saved by the MPI build, whose writer collects the others'. */
typedef void (*GPT3__MomentsWriter)(GPT3__AtomicFile *file, const GPT3 *m, void *ctx);

static void gpt3__write_own_moments(GPT3__AtomicFile *file, const GPT3 *m, void *ctx) {
    (void)ctx;
    gpt3__atomic_write_le(file, m->adam_m, m->num_parameters, 4);
    gpt3__atomic_write_le(file, m->adam_v, m->num_parameters, 4);
}

/* The training state, written in full to path.tmp: the model's moments,
   which go with its checkpoint (so none while LoRA adapters are apart). */
static int gpt3__write_state(GPT3__AtomicFile *file, const GPT3 *m, const GPT3TrainState *st,
                             const char *path, GPT3__MomentsWriter write_moments, void *ctx) {
    if (m->lora) return GPT3_ERR_LORA;
    uint32_t header[64] = {0};
    header[0] = GPT3__STATE_MAGIC;
    header[1] = 1;
    header[2] = (uint32_t)st->step;
    gpt3__split64(header + 3, m->num_parameters);
    gpt3__split64(header + 5, st->data_position);
    gpt3__split64(header + 7, st->data_rng);
    header[9] = m->adam_m != NULL;
    header[10] = gpt3__params_fingerprint(m);
    header[11] = st->tokenizer_id;
    int rc = gpt3__atomic_open(file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(file, header, 64, 4);
    if (m->adam_m) write_moments(file, m, ctx);
    return gpt3__atomic_close(file);
}

/* A model with a share of the moments cannot save them alone. */
static int gpt3__holds_all_moments(const GPT3 *m) {
    return m->adam_first == 0 && m->adam_count == m->num_parameters;
}

GPT3DEF int gpt3_save_state(const GPT3 *m, const GPT3TrainState *st, const char *path) {
    if (!m || !m->params || !st || !path || st->step < 0 || !gpt3__holds_all_moments(m))
        return GPT3_ERR_ARGUMENT;
    GPT3__AtomicFile file;
    int rc = gpt3__write_state(&file, m, st, path, gpt3__write_own_moments, NULL);
    return rc == GPT3_OK ? gpt3__atomic_rename(&file, path, 0) : rc;
}

/* Skip n floats of f (in steps a 32-bit long can seek). */
static int gpt3__skip_floats(FILE *f, size_t n) {
    for (size_t step = (size_t)1 << 28; n > 0; n -= n < step ? n : step)
        if (fseek(f, (long)((n < step ? n : step) * sizeof(float)), SEEK_CUR) != 0) return GPT3_ERR_READ;
    return GPT3_OK;
}

/* Floats first .. first + count - 1 of the total that follow in f, into
   out; f is left after all total. */
static int gpt3__read_share(FILE *f, float *out, size_t first, size_t count, size_t total) {
    int rc = gpt3__skip_floats(f, first);
    if (rc == GPT3_OK && gpt3__read_le(f, out, count, 4) != count) rc = ferror(f) ? GPT3_ERR_READ : GPT3_ERR_TRUNCATED;
    return rc == GPT3_OK ? gpt3__skip_floats(f, total - first - count) : rc;
}

GPT3DEF int gpt3_load_state(GPT3 *m, GPT3TrainState *st, const char *path) {
    if (!m || !m->params || !st || !path) return GPT3_ERR_ARGUMENT;
    uint32_t header[64];
    FILE *f;
    int rc = gpt3__open_file(path, 1, &f);
    if (rc != GPT3_OK) return rc;
    size_t got = gpt3__read_le(f, header, 64, 4);
    if (got >= 1 && header[0] != GPT3__STATE_MAGIC) rc = GPT3_ERR_NOT_CHECKPOINT;
    else if (got < 64) rc = GPT3_ERR_TRUNCATED;
    else if (header[1] != 1) rc = GPT3_ERR_VERSION;
    else if (gpt3__join64(header + 3) != m->num_parameters || header[2] > INT32_MAX ||
             header[10] != gpt3__params_fingerprint(m))
        rc = GPT3_ERR_MISMATCH;
    size_t P = m->num_parameters;
    float *mom1 = NULL, *mom2 = NULL;
    if (rc == GPT3_OK) /* the size, before allocating */
        rc = gpt3__check_length(f, header[9] ? 2.0 * (double)P * sizeof(float) : 0.0);
    if (rc == GPT3_OK && header[9]) { /* this process's share of each: all of it, unless sharded */
        size_t n = m->adam_count ? m->adam_count : 1;
        mom1 = (float *)GPT3_MALLOC(n * sizeof(float));
        mom2 = (float *)GPT3_MALLOC(n * sizeof(float));
        if (!mom1 || !mom2) rc = GPT3_ERR_NOMEM;
        if (rc == GPT3_OK) rc = gpt3__read_share(f, mom1, m->adam_first, m->adam_count, P);
        if (rc == GPT3_OK) rc = gpt3__read_share(f, mom2, m->adam_first, m->adam_count, P);
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
    st->tokenizer_id = header[11];
    return GPT3_OK;
}

/* ---- A run: the checkpoint and its training state as one save ------------
   Saving a run writes both files in full first (path.tmp and
   path.state.tmp, flushed to disk), then renames the state into place:
   that rename is the commit point. Then the checkpoint takes its place. An
   interruption before the commit leaves the previous pair as it was; one
   after it leaves the new state beside the new checkpoint, complete, in
   path.tmp, where loading the run finds it (the state names the
   parameters it goes with by their fingerprint) and finishes the save.
   Either way, loading gives the last save that was committed. */
static int gpt3__save_run(const GPT3 *m, const GPT3TrainState *st, const char *checkpoint_path,
                          GPT3__MomentsWriter write_moments, void *ctx) {
    char *state_path = gpt3__path_with(checkpoint_path, ".state");
    if (!state_path) return GPT3_ERR_NOMEM;
    GPT3__AtomicFile ckpt = {NULL, NULL, 0}, state;
    int rc = gpt3__write_checkpoint(&ckpt, m, checkpoint_path);
    if (rc == GPT3_OK) rc = gpt3__write_state(&state, m, st, state_path, write_moments, ctx);
    if (rc == GPT3_OK) rc = gpt3__atomic_rename(&state, state_path, 0); /* the commit point */
    if (rc == GPT3_OK) /* if this fails, gpt3_load_run finishes it from path.tmp */
        rc = gpt3__atomic_rename(&ckpt, checkpoint_path, 1);
    if (ckpt.tmp) { /* not committed: the previous pair is as it was */
        remove(ckpt.tmp);
        GPT3_FREE(ckpt.tmp);
    }
    GPT3_FREE(state_path);
    return rc;
}

GPT3DEF int gpt3_save_run(const GPT3 *m, const GPT3TrainState *st, const char *checkpoint_path) {
    if (!m || !m->params || !st || !checkpoint_path || st->step < 0 || !gpt3__holds_all_moments(m))
        return GPT3_ERR_ARGUMENT;
    return gpt3__save_run(m, st, checkpoint_path, gpt3__write_own_moments, NULL);
}

/* The checkpoint at path, or the complete one a save left at path.tmp
   when it was interrupted after its commit point, with the state that
   goes with it (rank's share of its moments); the second is then renamed
   into place. */
GPT3DEF int gpt3_load_run_shard(GPT3 *m, GPT3TrainState *st, const char *checkpoint_path,
                                int rank, int ranks) {
    if (m) memset(m, 0, sizeof(*m));
    if (!m || !st || !checkpoint_path || ranks < 1 || rank < 0 || rank >= ranks) return GPT3_ERR_ARGUMENT;
    char *state_path = gpt3__path_with(checkpoint_path, ".state");
    char *tmp_path = gpt3__path_with(checkpoint_path, ".tmp");
    int rc = state_path && tmp_path ? gpt3_load(m, checkpoint_path) : GPT3_ERR_NOMEM;
    if (rc == GPT3_OK) rc = gpt3_adamw_shard(m, rank, ranks);
    if (rc == GPT3_OK) rc = gpt3_load_state(m, st, state_path);
    if (rc == GPT3_ERR_MISMATCH || rc == GPT3_ERR_OPEN) {
        GPT3 unfinished;
        int rc_tmp = gpt3_load(&unfinished, tmp_path);
        if (rc_tmp == GPT3_OK) rc_tmp = gpt3_adamw_shard(&unfinished, rank, ranks);
        if (rc_tmp == GPT3_OK) rc_tmp = gpt3_load_state(&unfinished, st, state_path);
        if (rc_tmp == GPT3_OK && rename(tmp_path, checkpoint_path) == 0) {
            gpt3__sync_folder(tmp_path);
            gpt3_free(m);
            *m = unfinished;
            rc = GPT3_OK;
        } else {
            gpt3_free(&unfinished);
        }
    }
    if (rc != GPT3_OK) gpt3_free(m);
    GPT3_FREE(state_path);
    GPT3_FREE(tmp_path);
    return rc;
}

GPT3DEF int gpt3_load_run(GPT3 *m, GPT3TrainState *st, const char *checkpoint_path) {
    return gpt3_load_run_shard(m, st, checkpoint_path, 0, 1);
}

/* ---- Task heads and soft prompts -------------------------------------------
   16 little-endian uint32 -- magic "GHED", version 3 (2: without a prompt,
   1: without names either), kind, num_classes (0: no head, a prompt
   alone), channels, a fingerprint of the model's parameters (0 in files
   from before 0.6.7: not checked), the number of names (0, or one a class:
   two for a binary head), the soft prompt's length N (0: none), zeros --
   then the weight (K, C) and bias (K) as float32, each name (its length as
   a uint32, then its bytes), the prompt (N, C) as float32. The
   fingerprint ties the file to its checkpoint: one saved beside another
   model's parameters (a save of the pair cut off between its two files) is
   refused, not used with the wrong model. */
#define GPT3__HEAD_MAGIC 0x44454847 /* "GHED" */

#define GPT3__NAME_MAX 256

/* Take n names, each of names_memory's NUL-terminated strings in turn. */
static int gpt3__head_take_names(GPT3Head *h, char *memory, int n) {
    if (n < 1 || n > (1 << 21)) return GPT3_ERR_ARGUMENT;
    char **names = (char **)GPT3_MALLOC((size_t)n * sizeof(char *));
    if (!names) return GPT3_ERR_NOMEM;
    for (int i = 0; i < n; i++, memory += strlen(memory) + 1) names[i] = memory;
    GPT3_FREE(h->names);
    GPT3_FREE(h->names_memory);
    h->names = names;
    h->names_memory = names[0];
    h->num_names = n;
    return GPT3_OK;
}

GPT3DEF int gpt3_head_set_names(GPT3 *m, const char *const *names, int n) {
    if (!m || !m->head || !names || n != (m->head->kind == GPT3_HEAD_BINARY ? 2 : m->head->num_classes))
        return GPT3_ERR_ARGUMENT;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        size_t len = names[i] ? strlen(names[i]) : 0;
        if (len < 1 || len > GPT3__NAME_MAX) return GPT3_ERR_ARGUMENT;
        total += len + 1;
    }
    char *memory = (char *)GPT3_MALLOC(total), *p = memory;
    if (!memory) return GPT3_ERR_NOMEM;
    for (int i = 0; i < n; i++, p += strlen(p) + 1) memcpy(p, names[i], strlen(names[i]) + 1);
    int rc = gpt3__head_take_names(m->head, memory, n);
    if (rc != GPT3_OK) GPT3_FREE(memory);
    return rc;
}

/* n names of a head file, the rest of f (size bytes): each a uint32 length
   (1 to 256) and its bytes (no NUL among them), nothing after the last. */
static int gpt3__read_head_names(FILE *f, GPT3Head *h, int n, size_t size) {
    unsigned char *raw = (unsigned char *)GPT3_MALLOC(size + 1);
    char *memory = (char *)GPT3_MALLOC(size + 1), *p = memory;
    int rc = raw && memory ? GPT3_OK : GPT3_ERR_NOMEM;
    if (rc == GPT3_OK && fread(raw, 1, size, f) != size) rc = GPT3_ERR_TRUNCATED;
    size_t at = 0;
    for (int i = 0; rc == GPT3_OK && i < n; i++) {
        uint32_t len = 0;
        if (size - at < 4) { rc = GPT3_ERR_TRUNCATED; break; }
        for (int b = 3; b >= 0; b--) len = (len << 8) | raw[at + (size_t)b];
        at += 4;
        if (len < 1 || len > GPT3__NAME_MAX || len > size - at || memchr(raw + at, 0, len))
            rc = len > size - at ? GPT3_ERR_TRUNCATED : GPT3_ERR_CORRUPT;
        if (rc != GPT3_OK) break;
        memcpy(p, raw + at, len);
        p[len] = 0;
        p += len + 1;
        at += len;
    }
    if (rc == GPT3_OK && at != size) rc = GPT3_ERR_CORRUPT; /* more than the names */
    if (rc == GPT3_OK) rc = gpt3__head_take_names(h, memory, n);
    if (rc != GPT3_OK) GPT3_FREE(memory);
    GPT3_FREE(raw);
    return rc;
}

GPT3DEF int gpt3_head_save(const GPT3 *m, const char *path) {
    if (!m || (!m->head && !m->prompt) || !path) return GPT3_ERR_ARGUMENT;
    uint32_t header[16] = {0};
    const GPT3Head *h = m->head;
    size_t C = (size_t)m->config.channels;
    header[0] = GPT3__HEAD_MAGIC;
    header[1] = 3;
    header[2] = h ? (uint32_t)h->kind : 0;
    header[3] = h ? (uint32_t)h->num_classes : 0;
    header[4] = (uint32_t)C;
    header[5] = gpt3__params_fingerprint(m);
    header[6] = h ? (uint32_t)h->num_names : 0;
    header[7] = (uint32_t)gpt3__prompt_length(m);
    GPT3__AtomicFile file;
    int rc = gpt3__atomic_open(&file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(&file, header, 16, 4);
    if (h) gpt3__atomic_write_le(&file, h->params, (size_t)h->num_classes * (C + 1), 4);
    for (int i = 0; h && i < h->num_names; i++) {
        uint32_t len = (uint32_t)strlen(h->names[i]);
        gpt3__atomic_write_le(&file, &len, 1, 4);
        file.ok = file.ok && fwrite(h->names[i], 1, len, file.f) == len;
    }
    if (m->prompt) gpt3__atomic_write_le(&file, m->prompt->params, header[7] * C, 4);
    return gpt3__atomic_commit(&file, path);
}

/* A head file's header is one this reader can use for m: GPT3_OK, or why not. */
static int gpt3__check_head_header(const GPT3 *m, const uint32_t header[16], size_t got) {
    uint32_t version = got >= 2 ? header[1] : 0, K = header[3], names = version >= 2 ? header[6] : 0;
    uint32_t N = version >= 3 ? header[7] : 0;
    if (got >= 1 && header[0] != GPT3__HEAD_MAGIC) return GPT3_ERR_NOT_CHECKPOINT;
    if (got < 16) return GPT3_ERR_TRUNCATED;
    if (version < 1 || version > 3) return GPT3_ERR_VERSION;
    if (header[4] != (uint32_t)m->config.channels) return GPT3_ERR_MISMATCH;
    if (header[5] != 0 && header[5] != gpt3__params_fingerprint(m)) return GPT3_ERR_MISMATCH;
    int no_head = K == 0 && header[2] == 0 && names == 0 && N > 0;
    if (!no_head && !gpt3__head_shape_ok(header[2], K)) return GPT3_ERR_CORRUPT;
    if (names && names != (header[2] == GPT3_HEAD_BINARY ? 2u : K)) return GPT3_ERR_CORRUPT;
    if (N >= (uint32_t)m->config.max_seq_len) return GPT3_ERR_CORRUPT;
    return GPT3_OK;
}

GPT3DEF int gpt3_head_load(GPT3 *m, const char *path) {
    if (!m || !m->params || !path || m->head || m->prompt) return GPT3_ERR_ARGUMENT;
    uint32_t header[16] = {0};
    FILE *f;
    int rc = gpt3__open_file(path, 1, &f);
    if (rc != GPT3_OK) return rc;
    size_t got = gpt3__read_le(f, header, 16, 4);
    rc = gpt3__check_head_header(m, header, got);
    uint32_t K = header[3], names = header[1] >= 2 ? header[6] : 0, N = header[1] >= 3 ? header[7] : 0;
    double C = m->config.channels, weights = K * (C + 1.0) * sizeof(float);
    double prompt = N * C * sizeof(float), left = (double)gpt3__bytes_left(f);
    if (rc == GPT3_OK && names == 0) /* the size, before allocating what the header asks for */
        rc = gpt3__check_length(f, weights + prompt);
    else if (rc == GPT3_OK) /* each name is its length and 1 to 256 bytes */
        rc = left < weights + prompt + 5.0 * names ? GPT3_ERR_TRUNCATED
             : left > weights + prompt + 260.0 * names ? GPT3_ERR_CORRUPT : GPT3_OK;
    if (rc == GPT3_OK && K > 0) rc = gpt3_head_attach(m, (int)header[2], (int)K, 0);
    size_t n = K * ((size_t)C + 1);
    if (rc == GPT3_OK && K > 0 && gpt3__read_le(f, m->head->params, n, 4) != n)
        rc = ferror(f) ? GPT3_ERR_READ : GPT3_ERR_TRUNCATED;
    if (rc == GPT3_OK && names)
        rc = gpt3__read_head_names(f, m->head, (int)names, (size_t)(left - weights - prompt));
    if (rc == GPT3_OK && N > 0) rc = gpt3_prompt_attach(m, (int)N, NULL, 0, 0);
    n = (size_t)N * (size_t)C;
    if (rc == GPT3_OK && N > 0 && gpt3__read_le(f, m->prompt->params, n, 4) != n)
        rc = ferror(f) ? GPT3_ERR_READ : GPT3_ERR_TRUNCATED;
    if (rc != GPT3_OK) {
        gpt3__free_head(m);
        gpt3__free_prompt(m);
    }
    fclose(f);
    return rc;
}

/* ---- Fine-tuning: snapshots and the resume point ----------------------------
   The parts that train are those gpt3__gradient_parts lists: the model's
   parameters (here only when some of it trains: a frozen model's never
   change, and a run resumes from the same checkpoint), the adapters', the
   head's, the soft prompt's. The resume file: 32 little-endian uint32 --
   magic "GTUN", version 1, the fingerprint of the model's parameters,
   frozen_layers, frozen_final, the head's kind + 1 (0: none), the number
   of counters, 1 if the model's moments follow (0: no step yet, or the
   model is frozen), 1 if a snapshot follows, num_parameters and the four
   parts' sizes in floats (each as two words, low first), zeros -- then
   the counters (uint64 as two words each), each part's parameters, AdamW
   m and v (float32), and each part of the snapshot. */
#define GPT3__TUNING_MAGIC 0x4E555447 /* "GTUN" */

typedef struct { float *params, *adam_m, *adam_v; size_t size; } GPT3__Part;

static GPT3__Part gpt3__part(float *params, float *adam_m, float *adam_v, size_t size) {
    GPT3__Part part;
    part.params = params;
    part.adam_m = adam_m;
    part.adam_v = adam_v;
    part.size = size;
    return part;
}

static void gpt3__trained_parts(const GPT3 *m, GPT3__Part parts[GPT3__GRADIENT_PARTS]) {
    const GPT3LoRA *a = m->lora;
    const GPT3Head *h = m->head;
    const GPT3Prompt *p = m->prompt;
    size_t C = (size_t)m->config.channels;
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) parts[k] = gpt3__part(NULL, NULL, NULL, 0);
    if (gpt3__model_trains(m)) parts[0] = gpt3__part(m->params, m->adam_m, m->adam_v, m->num_parameters);
    if (a) parts[1] = gpt3__part(a->params, a->adam_m, a->adam_v, a->num_parameters);
    if (h) parts[2] = gpt3__part(h->params, h->adam_m, h->adam_v, (size_t)h->num_classes * (C + 1));
    if (p) parts[3] = gpt3__part(p->params, p->adam_m, p->adam_v, (size_t)p->length * C);
}

/* Does snapshot s hold the parts of m? */
static int gpt3__snapshot_fits(const GPT3 *m, const GPT3Snapshot *s) {
    GPT3__Part parts[GPT3__GRADIENT_PARTS];
    gpt3__trained_parts(m, parts);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        if ((s->copies[k] ? s->sizes[k] : 0) != parts[k].size) return 0;
    return 1;
}

static int gpt3__snapshot_empty(const GPT3Snapshot *s) {
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        if (s->copies[k]) return 0;
    return 1;
}

GPT3DEF int gpt3_snapshot_take(const GPT3 *m, GPT3Snapshot *s) {
    if (!m || !m->params || !s) return GPT3_ERR_ARGUMENT;
    if (!gpt3__snapshot_empty(s) && !gpt3__snapshot_fits(m, s)) return GPT3_ERR_MISMATCH;
    GPT3__Part parts[GPT3__GRADIENT_PARTS];
    gpt3__trained_parts(m, parts);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) {
        if (parts[k].size && !s->copies[k]) {
            s->copies[k] = (float *)GPT3_MALLOC(parts[k].size * sizeof(float));
            if (!s->copies[k]) return GPT3_ERR_NOMEM;
            s->sizes[k] = parts[k].size;
        }
    }
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        if (parts[k].size) memcpy(s->copies[k], parts[k].params, parts[k].size * sizeof(float));
    return GPT3_OK;
}

GPT3DEF int gpt3_snapshot_restore(GPT3 *m, const GPT3Snapshot *s) {
    if (!m || !m->params || !s) return GPT3_ERR_ARGUMENT;
    if (!gpt3__snapshot_fits(m, s)) return GPT3_ERR_MISMATCH;
    GPT3__Part parts[GPT3__GRADIENT_PARTS];
    gpt3__trained_parts(m, parts);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        if (parts[k].size) memcpy(parts[k].params, s->copies[k], parts[k].size * sizeof(float));
    return GPT3_OK;
}

GPT3DEF void gpt3_snapshot_free(GPT3Snapshot *s) {
    if (!s) return;
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) GPT3_FREE(s->copies[k]);
    memset(s, 0, sizeof(*s));
}

/* The resume file's header for m as it is set up now (the counts of what
   follows: moments of the model, a snapshot, counters). */
static void gpt3__tuning_header(const GPT3 *m, uint32_t header[32], int model_moments, int has_best,
                                int n_counters) {
    GPT3__Part parts[GPT3__GRADIENT_PARTS];
    gpt3__trained_parts(m, parts);
    memset(header, 0, 32 * sizeof(uint32_t));
    header[0] = GPT3__TUNING_MAGIC;
    header[1] = 1;
    header[2] = gpt3__params_fingerprint(m);
    header[3] = (uint32_t)m->frozen_layers;
    header[4] = (uint32_t)m->frozen_final;
    header[5] = m->head ? (uint32_t)m->head->kind + 1 : 0;
    header[6] = (uint32_t)n_counters;
    header[7] = (uint32_t)model_moments;
    header[8] = (uint32_t)has_best;
    gpt3__split64(header + 9, m->num_parameters);
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) gpt3__split64(header + 11 + 2 * k, parts[k].size);
}

GPT3DEF int gpt3_save_tuning(const GPT3 *m, const GPT3Snapshot *best, const uint64_t *counters,
                             int n_counters, const char *path) {
    if (!m || !m->params || !path || n_counters < 0 || n_counters > 1024 || (n_counters && !counters) ||
        !gpt3__holds_all_moments(m))
        return GPT3_ERR_ARGUMENT;
    if (best && !gpt3__snapshot_fits(m, best)) return GPT3_ERR_MISMATCH;
    GPT3__Part parts[GPT3__GRADIENT_PARTS];
    gpt3__trained_parts(m, parts);
    uint32_t header[32], word[2];
    gpt3__tuning_header(m, header, parts[0].size && m->adam_m, best != NULL, n_counters);
    GPT3__AtomicFile file;
    int rc = gpt3__atomic_open(&file, path);
    if (rc != GPT3_OK) return rc;
    gpt3__atomic_write_le(&file, header, 32, 4);
    for (int i = 0; i < n_counters; i++) {
        gpt3__split64(word, counters[i]);
        gpt3__atomic_write_le(&file, word, 2, 4);
    }
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) {
        if (!parts[k].size) continue;
        gpt3__atomic_write_le(&file, parts[k].params, parts[k].size, 4);
        if (k > 0 || header[7]) {
            gpt3__atomic_write_le(&file, parts[k].adam_m, parts[k].size, 4);
            gpt3__atomic_write_le(&file, parts[k].adam_v, parts[k].size, 4);
        }
    }
    for (int k = 0; best && k < GPT3__GRADIENT_PARTS; k++)
        if (parts[k].size) gpt3__atomic_write_le(&file, best->copies[k], parts[k].size, 4);
    return gpt3__atomic_commit(&file, path);
}

/* A resume file's header, checked against m as set up now: GPT3_OK, or why not. */
static int gpt3__check_tuning_header(const GPT3 *m, const uint32_t header[32], size_t got, int n_counters) {
    uint32_t want[32];
    if (got >= 1 && header[0] != GPT3__TUNING_MAGIC) return GPT3_ERR_NOT_CHECKPOINT;
    if (got < 32) return GPT3_ERR_TRUNCATED;
    if (header[1] != 1) return GPT3_ERR_VERSION;
    if (header[7] > 1 || header[8] > 1) return GPT3_ERR_CORRUPT;
    gpt3__tuning_header(m, want, (int)header[7], (int)header[8], n_counters);
    if (header[7] && !gpt3__model_trains(m)) return GPT3_ERR_MISMATCH;
    for (int i = 3; i < 32; i++) /* the set-up (every word but the fingerprint) */
        if (header[i] != want[i]) return GPT3_ERR_MISMATCH;
    /* a frozen model is not in the file: it must be the one the run started from */
    return gpt3__model_trains(m) || header[2] == want[2] ? GPT3_OK : GPT3_ERR_MISMATCH;
}

GPT3DEF int gpt3_load_tuning(GPT3 *m, GPT3Snapshot *best, uint64_t *counters, int n_counters,
                             const char *path) {
    if (!m || !m->params || !best || !path || n_counters < 0 || n_counters > 1024 ||
        (n_counters && !counters) || !gpt3__holds_all_moments(m))
        return GPT3_ERR_ARGUMENT;
    uint32_t header[32] = {0};
    FILE *f;
    int rc = gpt3__open_file(path, 1, &f);
    if (rc != GPT3_OK) return rc;
    size_t got = gpt3__read_le(f, header, 32, 4);
    rc = gpt3__check_tuning_header(m, header, got, n_counters);
    GPT3__Part parts[GPT3__GRADIENT_PARTS], read[GPT3__GRADIENT_PARTS];
    GPT3Snapshot read_best;
    gpt3__trained_parts(m, parts);
    memset(read, 0, sizeof(read));
    memset(&read_best, 0, sizeof(read_best));
    double floats = 0.0;
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++)
        floats += (double)parts[k].size * (1 + (k > 0 || header[7] ? 2 : 0) + header[8]);
    if (rc == GPT3_OK) /* the size, before allocating */
        rc = gpt3__check_length(f, 8.0 * n_counters + 4.0 * floats);
    uint32_t *words = rc == GPT3_OK ? (uint32_t *)GPT3_MALLOC(2 * (size_t)n_counters * 4 + 4) : NULL;
    if (rc == GPT3_OK && !words) rc = GPT3_ERR_NOMEM;
    if (rc == GPT3_OK && gpt3__read_le(f, words, 2 * (size_t)n_counters, 4) != 2 * (size_t)n_counters)
        rc = GPT3_ERR_READ;
    for (int k = 0; rc == GPT3_OK && k < GPT3__GRADIENT_PARTS; k++) {
        size_t n = parts[k].size;
        float **into[3] = {&read[k].params, &read[k].adam_m, &read[k].adam_v};
        for (int j = 0; rc == GPT3_OK && n && j < (k > 0 || header[7] ? 3 : 1); j++) {
            *into[j] = (float *)GPT3_MALLOC(n * sizeof(float));
            rc = !*into[j] ? GPT3_ERR_NOMEM : gpt3__read_le(f, *into[j], n, 4) != n ? GPT3_ERR_READ : GPT3_OK;
        }
    }
    for (int k = 0; rc == GPT3_OK && header[8] && k < GPT3__GRADIENT_PARTS; k++) {
        size_t n = parts[k].size;
        if (!n) continue;
        read_best.copies[k] = (float *)GPT3_MALLOC(n * sizeof(float));
        read_best.sizes[k] = n;
        rc = !read_best.copies[k] ? GPT3_ERR_NOMEM : gpt3__read_le(f, read_best.copies[k], n, 4) != n ? GPT3_ERR_READ : GPT3_OK;
    }
    fclose(f);
    if (rc == GPT3_OK && parts[0].size && gpt3__fingerprint(read[0].params, parts[0].size) != header[2])
        rc = GPT3_ERR_CORRUPT; /* the model's parameters are not the ones the header names */
    if (rc != GPT3_OK) {
        for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) gpt3__free_trainable(read[k].params, NULL, read[k].adam_m, read[k].adam_v);
        gpt3_snapshot_free(&read_best);
        GPT3_FREE(words);
        return rc;
    }
    /* all read: put it in place */
    float **params[GPT3__GRADIENT_PARTS] = {NULL, m->lora ? &m->lora->params : NULL, m->head ? &m->head->params : NULL,
                                            m->prompt ? &m->prompt->params : NULL};
    float **moments[GPT3__GRADIENT_PARTS][2] = {
        {&m->adam_m, &m->adam_v}, {m->lora ? &m->lora->adam_m : NULL, m->lora ? &m->lora->adam_v : NULL},
        {m->head ? &m->head->adam_m : NULL, m->head ? &m->head->adam_v : NULL},
        {m->prompt ? &m->prompt->adam_m : NULL, m->prompt ? &m->prompt->adam_v : NULL}};
    for (int k = 0; k < GPT3__GRADIENT_PARTS; k++) {
        if (!parts[k].size) continue;
        if (k == 0) { /* the flat array that m->w views */
            memcpy(m->params, read[0].params, parts[0].size * sizeof(float));
            GPT3_FREE(read[0].params);
        } else {
            GPT3_FREE(*params[k]);
            *params[k] = read[k].params;
        }
        GPT3_FREE(*moments[k][0]);
        GPT3_FREE(*moments[k][1]);
        *moments[k][0] = read[k].adam_m; /* NULL for a model with no step yet */
        *moments[k][1] = read[k].adam_v;
    }
    for (int i = 0; i < n_counters; i++) counters[i] = gpt3__join64(words + 2 * i);
    GPT3_FREE(words);
    gpt3_snapshot_free(best);
    *best = read_best;
    return GPT3_OK;
}

/* ======================================================================== */
/* Prediction: a fine-tuned model inside an application (step 5)            */
/* ======================================================================== */

/* The folder of path (up to its last '/') + name; allocated, NULL if out of
   memory. */
static char *gpt3__beside(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path + 1) : 0, n = strlen(name);
    char *joined = (char *)GPT3_MALLOC(dir + n + 1);
    if (!joined) return NULL;
    memcpy(joined, path, dir);
    memcpy(joined + dir, name, n + 1);
    return joined;
}

static int gpt3__exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

GPT3DEF int gpt3_load_finetuned(GPT3 *m, GPT3Tokenizer *tok, const char *checkpoint_path) {
    if (m) memset(m, 0, sizeof(*m));
    if (tok) memset(tok, 0, sizeof(*tok));
    if (!m || !tok || !checkpoint_path) return GPT3_ERR_ARGUMENT;
    char *head = gpt3__path_with(checkpoint_path, ".head");
    char *enc = gpt3__beside(checkpoint_path, "encoder.json");
    char *bpe = gpt3__beside(checkpoint_path, "vocab.bpe");
    int rc = head && enc && bpe ? gpt3_load(m, checkpoint_path) : GPT3_ERR_NOMEM;
    if (rc == GPT3_OK && gpt3__exists(head)) rc = gpt3_head_load(m, head);
    if (rc == GPT3_OK) /* one of the two files alone fails to open: said, not guessed */
        rc = gpt3__exists(enc) || gpt3__exists(bpe) ? gpt3_tokenizer_load(tok, enc, bpe)
                                                    : gpt3_tokenizer_bytes(tok);
    if (rc == GPT3_OK && tok->vocab_size != m->config.vocab_size) rc = GPT3_ERR_MISMATCH;
    if (rc != GPT3_OK) {
        gpt3_free(m);
        gpt3_tokenizer_free(tok);
    }
    GPT3_FREE(head);
    GPT3_FREE(enc);
    GPT3_FREE(bpe);
    return rc;
}

GPT3DEF int gpt3_head_outputs(const GPT3 *m) {
    if (!m || !m->head) return 0;
    return m->head->kind == GPT3_HEAD_BINARY ? 2 : m->head->num_classes;
}

/* The index of the largest of x[0 .. n) (the first, on a tie). */
static int gpt3__argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) best = x[i] > x[best] ? i : best;
    return best;
}

/* A binary head's one logit z gives P(1) = sigmoid(z); the others a softmax. */
GPT3DEF int gpt3_head_probabilities(GPT3 *m, const int *inputs, const int *lengths, int B, int T,
                                    float *probs) {
    if (!m || !m->head || !probs) return GPT3_ERR_ARGUMENT;
    int rc = gpt3_head_forward(m, inputs, lengths, NULL, B, T);
    if (rc != GPT3_OK) return rc;
    const GPT3Head *h = m->head;
    int K = h->num_classes, out = gpt3_head_outputs(m);
    size_t rows = h->kind == GPT3_HEAD_TAGS ? (size_t)B * T : (size_t)B;
    for (size_t r = 0; r < rows; r++) {
        const float *z = h->logits + r * K;
        float *p = probs + r * out;
        if (h->kind == GPT3_HEAD_BINARY) {
            p[1] = gpt3__sigmoid(z[0]);
            p[0] = 1.0f - p[1];
            continue;
        }
        float top = gpt3__max_value(z, K);
        double sum = gpt3__sum_exp(z, top, K);
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)z[k] - top) / sum);
    }
    return GPT3_OK;
}

GPT3DEF int gpt3_classify(GPT3 *m, GPT3Tokenizer *tok, const void *text, size_t n, float *probs,
                          int *cut) {
    if (!m || !m->head || m->head->kind == GPT3_HEAD_TAGS || !tok || (!text && n) || !probs)
        return GPT3_ERR_ARGUMENT;
    int *ids = NULL, room = m->config.max_seq_len - gpt3__prompt_length(m);
    size_t n_ids = 0;
    int rc = gpt3_encode(tok, text, n, &ids, &n_ids);
    int T = n_ids < (size_t)room ? (int)n_ids : room;
    if (rc == GPT3_OK) rc = gpt3_head_probabilities(m, ids, NULL, 1, T, probs);
    if (cut) *cut = rc == GPT3_OK && n_ids > (size_t)room;
    GPT3_FREE(ids);
    return rc;
}

GPT3DEF int gpt3_encode_words(GPT3Tokenizer *tok, const char *const *words, int n_words,
                              int **ids, size_t *n_ids, int *first) {
    if (!tok || !ids || !n_ids || n_words < 0 || (n_words && (!words || !first)))
        return GPT3_ERR_ARGUMENT;
    size_t capacity = 0;
    int rc = GPT3_OK;
    *ids = NULL;
    *n_ids = 0;
    for (int w = 0; rc == GPT3_OK && w < n_words; w++) {
        size_t len = words[w] ? strlen(words[w]) : 0, n_got = 0;
        char *piece = len ? (char *)GPT3_MALLOC(len + 2) : NULL; /* " word" */
        int *got = NULL;
        rc = !len ? GPT3_ERR_ARGUMENT : !piece ? GPT3_ERR_NOMEM : GPT3_OK;
        if (rc == GPT3_OK) {
            piece[0] = ' ';
            memcpy(piece + 1, words[w], len + 1);
            rc = gpt3_encode(tok, w ? piece : piece + 1, w ? len + 1 : len, &got, &n_got);
        }
        if (rc == GPT3_OK) rc = gpt3__reserve((void **)ids, &capacity, *n_ids + n_got, sizeof(int));
        if (rc == GPT3_OK) {
            first[w] = (int)*n_ids;
            memcpy(*ids + *n_ids, got, n_got * sizeof(int));
            *n_ids += n_got;
        }
        GPT3_FREE(piece);
        GPT3_FREE(got);
    }
    if (rc != GPT3_OK) {
        GPT3_FREE(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return rc;
}

GPT3DEF int gpt3_tag_words(GPT3 *m, GPT3Tokenizer *tok, const char *const *words, int n_words,
                           int *tags, float *probs) {
    if (!m || !m->head || m->head->kind != GPT3_HEAD_TAGS || !tok || !words || n_words < 1 || !tags)
        return GPT3_ERR_ARGUMENT;
    int *first = (int *)GPT3_MALLOC((size_t)n_words * sizeof(int)), *ids = NULL;
    int K = m->head->num_classes, room = m->config.max_seq_len - gpt3__prompt_length(m);
    size_t n_ids = 0;
    int rc = first ? gpt3_encode_words(tok, words, n_words, &ids, &n_ids, first) : GPT3_ERR_NOMEM;
    int T = n_ids < (size_t)room ? (int)n_ids : room;
    float *p = rc == GPT3_OK ? (float *)GPT3_MALLOC((size_t)T * K * sizeof(float)) : NULL;
    if (rc == GPT3_OK) rc = p ? gpt3_head_probabilities(m, ids, NULL, 1, T, p) : GPT3_ERR_NOMEM;
    for (int w = 0; rc == GPT3_OK && w < n_words; w++) {
        int end = w + 1 < n_words ? first[w + 1] : (int)n_ids; /* a word counts if all of it fits */
        tags[w] = end <= T ? gpt3__argmax(p + (size_t)first[w] * K, K) : -1;
        if (probs) probs[w] = tags[w] >= 0 ? p[(size_t)first[w] * K + tags[w]] : 0.0f;
    }
    GPT3_FREE(first);
    GPT3_FREE(ids);
    GPT3_FREE(p);
    return rc;
}

/* ======================================================================== */
/* Fast kernels: the packed matrix product and blocked attention            */
/* ======================================================================== */

/* The same products as the reference layers, computed as BLIS computes
   them (Goto & van de Geijn 2008; Van Zee & van de Geijn 2015): five loops
   around a micro-kernel, C (M, N) += A (M, K) B (K, N), each loop blocking
   for one level of the memory:
     5. C's columns, NC at a time (gpt3__gemm_block): a panel of B, KC x NC,
        is packed once and stays in the L2 cache for the thread's rows;
     4. K, KC at a time: each element's sum goes one K block after another;
     3. C's rows, MC at a time (gpt3__gemm_panel): a block of A is packed
        into slivers of MR rows;
     2. the panel's columns, NR at a time, and
     1. the block's rows, MR at a time: one sliver of A (MR x KC, in L1)
        times one NR-wide strip of the panel, into an MR x NR tile of C
        held in registers: the micro-kernel (gpt3__microkernel).
   The micro-kernel is the one part written per instruction set: a plain C
   loop the compiler vectorises, and with AVX-512 the same loop in
   intrinsics. The threads share C's rows or columns (gpt3__gemm); the
   attention's products run the same loops over the band the causal mask
   and the window leave. Tested against: gpt3__matmul_forward and _backward
   against gpt3__matmul_*_reference, gpt3__attention_forward and _backward
   against gpt3__attention_*_reference (test_gpt3.c, at awkward shapes). */

/* An operand is a strided view, element (i, k) at p[i * si + k * sk], so
   the transposed products need no transposed copies of the tensors; in
   every operand here si or sk is 1, and the copies and the micro-kernel
   count on it. */

/* ---- The register tile, per instruction set ----
   The micro-kernel holds an MR x NR tile of C in vector registers while it
   sums over k: MR broadcasts of A and NR / VEC loads of B feed MR NR / VEC
   multiply-adds a step. The tile must leave registers for B's vectors and
   A's broadcast, and be large enough that the loads do not limit the
   multiply-adds. So the tile is chosen per instruction set when the header
   is compiled, as BLIS does (its Haswell sgemm kernel is 6 x 16, its ARMv8
   one 8 x 12):
     AVX-512       32 registers of VEC 16 floats: 8 x 48, 24 accumulators;
     AVX2 + FMA    16 registers of 8:             6 x 16, 12 accumulators;
     NEON, AArch64 32 registers of 4:             8 x 12, 24 accumulators;
     portable C    the compiler's own vectors:    8 x 8 (a k of a sliver is
                  then one load of 8 floats: at 4 x 8, GCC 12 -O3 with AVX
                  pairs two k in a load and reads one past the sliver's end).
   A tile narrows to whole vectors (1, 2 or 3 of them a row: NR is at most
   3 VEC) where a band or C ends. Each of the first three has a kernel in
   intrinsics, written once over the vector type and its five operations
   below; the portable one is a C loop the compiler vectorises. */
#if defined(__AVX512F__)
#define GPT3__MR 8
#define GPT3__NR 48
#define GPT3__VEC 16
#define GPT3__ISA "AVX-512"
#define GPT3__ISA_KERNEL 1
typedef __m512 GPT3__Vector;
static inline GPT3__Vector gpt3__vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void gpt3__vstore(float *p, GPT3__Vector v) { _mm512_storeu_ps(p, v); }
static inline GPT3__Vector gpt3__vbroadcast(float x) { return _mm512_set1_ps(x); }
static inline GPT3__Vector gpt3__vzero(void) { return _mm512_setzero_ps(); }
static inline GPT3__Vector gpt3__vadd(GPT3__Vector x, GPT3__Vector y) { return _mm512_add_ps(x, y); }
/* acc + x y, rounded once */
static inline GPT3__Vector gpt3__vfma(GPT3__Vector acc, GPT3__Vector x, GPT3__Vector y) {
    return _mm512_fmadd_ps(x, y, acc);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define GPT3__MR 6
#define GPT3__NR 16
#define GPT3__VEC 8
#define GPT3__ISA "AVX2+FMA"
#define GPT3__ISA_KERNEL 1
typedef __m256 GPT3__Vector;
static inline GPT3__Vector gpt3__vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void gpt3__vstore(float *p, GPT3__Vector v) { _mm256_storeu_ps(p, v); }
static inline GPT3__Vector gpt3__vbroadcast(float x) { return _mm256_set1_ps(x); }
static inline GPT3__Vector gpt3__vzero(void) { return _mm256_setzero_ps(); }
static inline GPT3__Vector gpt3__vadd(GPT3__Vector x, GPT3__Vector y) { return _mm256_add_ps(x, y); }
static inline GPT3__Vector gpt3__vfma(GPT3__Vector acc, GPT3__Vector x, GPT3__Vector y) {
    return _mm256_fmadd_ps(x, y, acc);
}
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define GPT3__MR 8
#define GPT3__NR 12
#define GPT3__VEC 4
#define GPT3__ISA "NEON"
#define GPT3__ISA_KERNEL 1
typedef float32x4_t GPT3__Vector;
static inline GPT3__Vector gpt3__vload(const float *p) { return vld1q_f32(p); }
static inline void gpt3__vstore(float *p, GPT3__Vector v) { vst1q_f32(p, v); }
static inline GPT3__Vector gpt3__vbroadcast(float x) { return vdupq_n_f32(x); }
static inline GPT3__Vector gpt3__vzero(void) { return vdupq_n_f32(0.0f); }
static inline GPT3__Vector gpt3__vadd(GPT3__Vector x, GPT3__Vector y) { return vaddq_f32(x, y); }
static inline GPT3__Vector gpt3__vfma(GPT3__Vector acc, GPT3__Vector x, GPT3__Vector y) {
    return vfmaq_f32(acc, x, y);
}
#else
#define GPT3__MR 8
#define GPT3__NR 8
#define GPT3__VEC 4
#define GPT3__ISA "portable C"
#endif

/* The cache blocks: KC (the k of a sliver of A, in the L1 cache), NC (the
   columns of a panel of B, in the L2 cache) and MC (the rows of A packed at
   a time). They may be set with -D to tune another CPU; NC is rounded down
   to whole tiles (a multiple of NR) and MC to whole slivers (of MR). NC is
   the most: a smaller L2 cache takes fewer (gpt3__panel_columns). KC stays
   what it is on every machine: the K blocks set the order of each sum. */
#ifndef GPT3_KC
#define GPT3_KC 512
#endif
#ifndef GPT3_NC
#define GPT3_NC 192
#endif
#ifndef GPT3_MC
#define GPT3_MC 128
#endif
#define GPT3__NC (GPT3_NC / GPT3__NR * GPT3__NR)
#define GPT3__MC (GPT3_MC / GPT3__MR * GPT3__MR)
#if GPT3__NC < GPT3__NR || GPT3__MC < GPT3__MR || GPT3_KC < 1
#error "gpt3.h: GPT3_NC must hold a tile's columns (NR), GPT3_MC a sliver's rows (MR), GPT3_KC one k"
#endif
/* The cache blocks of a product whose C has M rows. With at most C_ROWS
   rows, M times NC columns of C stay in the L2 cache beside a
   panel of B and a block of A while the K blocks add to them (GPT-3 Small
   at B T = 256). With more, C cannot stay, and the blocks are BLIS's usual
   ones: KC halved, NC doubled (the teaching size at B T = 2048). When K is
   one block there is nothing to keep, and NC is four times wider: each
   sliver of A is then copied a quarter as often (the weight gradients,
   K = B T). When K is at most one and a half blocks, it is one block: C is
   then loaded and stored once, not twice (K = C, the forward products).
   The panel of B is KC x 4 NC at most.
   The K blocks set the order in which each element's sum is added up, so
   they depend on the product's shape only, never on the share of it that
   one thread takes: the results are the same bits for any thread count. */
#define GPT3__C_ROWS 256

/* NC for this machine: the panel of B, KC x NC floats, takes 3/8 of the L2
   cache where the system says how large that is (glibc's sysconf, which
   reads it once at start), so that C's rows and A's slivers fit beside
   it: 192 columns in 1 MB (Zen 4 and 5), 96 in 512 KB (Zen 2 and 3), at
   most GPT3__NC, at least one tile. Elsewhere GPT3__NC. NC only groups
   C's columns; the results are the same bits whatever it is. */
static int gpt3__panel_columns(void) {
    long l2 = 0;
#if defined(GPT3__HAVE_POSIX) && defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (l2 <= 0) return GPT3__NC;
    long nc = l2 / 8 * 3 / (GPT3_KC * (long)sizeof(float)) / GPT3__NR * GPT3__NR;
    return nc < GPT3__NR ? GPT3__NR : nc > GPT3__NC ? GPT3__NC : (int)nc;
}

static void gpt3__blocks(int M, int K, int *kc_block, int *nc_block) {
    int c_stays = M <= GPT3__C_ROWS, nc = gpt3__panel_columns();
    *kc_block = c_stays ? GPT3_KC : GPT3_KC / 2;
    *nc_block = (c_stays ? nc : 2 * nc) * (K <= *kc_block ? 4 : 1);
    if (K <= *kc_block * 3 / 2) *kc_block = K;
}

/* A's buffer holds four blocks. What a thread keeps of its share of A
   (its rows by all of K) decides how often A is copied:
     - all of it, when it fits: copied once and kept for every NC columns
       (the forward products: A is the B T x C input);
     - one K block of all its rows, when A is too large to stay in the
       last-level cache (A_STREAMED floats; the LM head's dLoss/dlogits is
       51 MB for GPT-3 Small): each K block then runs over all the thread's
       columns before the next, so A comes from memory once and C, which
       is small, comes back from the cache;
     - nothing: A is copied again for every NC columns, from the cache. */
#define GPT3__A_FLOATS (4 * GPT3__MC * GPT3_KC)
#define GPT3__PANEL_FLOATS (GPT3__A_FLOATS + GPT3_KC * 4 * GPT3__NC)
#ifndef GPT3_A_STREAMED
#define GPT3_A_STREAMED ((size_t)4 << 20)
#endif
enum { GPT3__KEEP_NONE, GPT3__KEEP_BLOCK, GPT3__KEEP_ALL };
static int gpt3__keep_a(int rows, int K, int KC) {
    size_t rows_all = (size_t)(rows + GPT3__MR - 1) / GPT3__MR * GPT3__MR;
    if (rows_all * K <= GPT3__A_FLOATS) return GPT3__KEEP_ALL;
    if (rows_all * K > GPT3_A_STREAMED && rows_all * KC <= GPT3__A_FLOATS) return GPT3__KEEP_BLOCK;
    return GPT3__KEEP_NONE;
}

/* Floats of a thread's panels, the buffer every product packs into. */
static size_t gpt3__matmul_scratch_floats(void) { return GPT3__PANEL_FLOATS; }

typedef struct { const float *p; size_t si, sk; } GPT3__Operand;

/* The view of x that starts at its element (i, k). */
static GPT3__Operand gpt3__at(GPT3__Operand x, int i, int k) {
    GPT3__Operand v = {x.p + (size_t)i * x.si + (size_t)k * x.sk, x.si, x.sk};
    return v;
}

/* Packing reads an operand whose rows run along k (the forward's x and W)
   crosswise: element by element it is a quarter of the forward's time.
   With AVX, 8 x 8 blocks are transposed in registers instead (intrinsics,
   as in gpt3__microkernel_vectors; without AVX the C loop does it all):
   dst[c * ldd + r] = src[r * lds + c] for r, c < 8. */
#ifdef __AVX__
static void gpt3__transpose8(float *dst, size_t ldd, const float *src, size_t lds) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds),
           r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds),
           r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds),
           r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    /* pairs of rows interleaved, then pairs of pairs: each 128-bit half
       then holds 4 x 4 transposed blocks, and the halves are exchanged */
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
           t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
           t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* One sliver of an x whose rows run along k (x.sk 1), read along them:
   dst[k * width + r] = x(i0 + r, k0 + k) for r < rows <= width; zero up to width. */
static void gpt3__pack_across(float *dst, GPT3__Operand x, int i0, int rows, int k0, int kc,
                              int width) {
    const float *src = gpt3__at(x, i0, k0).p;
    int r = 0;
#ifdef __AVX__
    for (; r + 8 <= rows; r += 8) {
        int k = 0;
        for (; k + 8 <= kc; k += 8)
            gpt3__transpose8(dst + (size_t)k * width + r, width, src + (size_t)r * x.si + k, x.si);
        for (int r8 = r; r8 < r + 8; r8++)
            for (int k8 = k; k8 < kc; k8++) dst[k8 * width + r8] = src[(size_t)r8 * x.si + k8];
    }
#endif
    for (; r < rows; r++)
        for (int k = 0; k < kc; k++) dst[k * width + r] = src[(size_t)r * x.si + k];
    for (int k = 0; k < kc; k++)
        for (int r = rows; r < width; r++) dst[k * width + r] = 0.0f;
}

/* A function the compiler must inline, so that the constants it is called
   with (widths, strides) shape its loops. */
#if defined(__GNUC__)
#define GPT3__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define GPT3__ALWAYS_INLINE inline
#endif

/* Slivers of a k-major x (x.si 1), each k in one pass over all of them:
   see gpt3__pack. */
static GPT3__ALWAYS_INLINE void gpt3__pack_along(float *dst, GPT3__Operand x, int i0, int rows,
                                                 int k0, int kc, int width) {
    for (int k = 0; k < kc; k++) {
        const float *src = gpt3__at(x, i0, k0 + k).p;
        for (int s = 0; s < rows; s += width) {
            float *d = dst + (size_t)s * kc + (size_t)k * width;
            int n = gpt3__min(width, rows - s);
            if (n == width)
                memcpy(d, src + s, (size_t)width * sizeof(float));
            else
                for (int r = 0; r < width; r++) d[r] = r < n ? src[s + r] : 0.0f;
        }
    }
}

/* Rows i0 .. i0+rows-1 of x, k0 .. k0+kc-1, as slivers of width rows each
   (the last padded with zeros): element (r, k) of sliver s at
   dst[s * width * kc + k * width + r]. Every operand here runs along one
   of its axes (x.si or x.sk is 1). Where x's columns run along its rows
   (k-major, x.si 1: dLoss/dout^T in dW), each k is one pass over all the
   slivers, which read it as one run (sliver by sliver, each k's floats lie
   a row of the tensor apart). The widths MR and NR are constants where
   they are inlined, so that a whole sliver's copy is a few vector moves. */
static void gpt3__pack(float *dst, GPT3__Operand x, int i0, int rows, int k0, int kc,
                       int width) {
    if (x.sk == 1)
        for (int s = 0; s < rows; s += width)
            gpt3__pack_across(dst + (size_t)s * kc, x, i0 + s, gpt3__min(width, rows - s), k0,
                              kc, width);
    else if (width == GPT3__MR)
        gpt3__pack_along(dst, x, i0, rows, k0, kc, GPT3__MR);
    else if (width == GPT3__NR)
        gpt3__pack_along(dst, x, i0, rows, k0, kc, GPT3__NR);
    else
        gpt3__pack_along(dst, x, i0, rows, k0, kc, width);
}

/* A tile may be narrowed to one or two vectors of its NR columns, so that
   a band's edge tiles compute only the part of the band they hold, and a
   product whose N is 64 (the attention's heads) 64 columns, not 96 (AVX-512:
   there B's panels are 32 wide, two whole tiles).
   The pragma unrolls the loop over rows: without it GCC 12 keeps a
   narrow tile's sums in memory. */
#if GPT3__NR > 3 * GPT3__VEC || GPT3__NR % GPT3__VEC != 0
#error "gpt3.h: a tile's NR columns must be 1, 2 or 3 whole vectors"
#endif

/* c[r * ldc + j] += sum_k a[r * a_si + k * a_sk] b[k * ldb + j] for r < MR,
   j < cols; when add is 0, c = bias[j] + sum instead (bias NULL: 0). cols
   is VEC, 2 VEC or NR, a constant wherever this is inlined, so that the
   loops over j become cols / VEC vector registers a row. */
static GPT3__ALWAYS_INLINE void gpt3__microkernel_cols(int kc, const float *a, size_t a_si,
                                                     size_t a_sk, const float *b, int ldb,
                                                     float *c, size_t ldc, int add,
                                                     const float *bias, int cols) {
    float acc[GPT3__MR][GPT3__NR];
    for (int r = 0; r < GPT3__MR; r++)
        for (int j = 0; j < cols; j++) acc[r][j] = 0.0f;
    for (int k = 0; k < kc; k++)
        #pragma GCC unroll 8
        for (int r = 0; r < GPT3__MR; r++) {
            float ar = a[r * a_si + k * a_sk];
            for (int j = 0; j < cols; j++) acc[r][j] += ar * b[k * ldb + j];
        }
    for (int r = 0; r < GPT3__MR; r++)
        for (int j = 0; j < cols; j++) {
            if (add)
                c[r * ldc + j] += acc[r][j];
            else
                c[r * ldc + j] = bias ? bias[j] + acc[r][j] : acc[r][j];
        }
}

/* The same in the instruction set's intrinsics: vectors = cols / VEC
   registers a row, a constant where this is inlined. Compilers build the
   C kernel's MR broadcasts of A a step from one load and MR - 1 permutes
   (GCC 12); here each is a broadcast load of its own (with AVX-512, in
   VEC-column tiles, folded into the multiply-add, {1to16}), so a step is
   only loads and multiply-adds, and narrow tiles keep up. A sliver read
   in place along its rows (a_sk 1) takes the C kernel on AVX-512, which
   loads 16 k of a row at once; elsewhere that C loop is 10x slower than
   this one (GCC 12, 6 x 16 on AVX2), and this one takes it too. So does
   AVX-512's tile of one vector (16 columns): GCC 12 leaves its C loop's
   multiply and add unfused, and its sums would not be the other tiles'
   and the AVX2 build's bits. */
#ifdef GPT3__ISA_KERNEL
static GPT3__ALWAYS_INLINE void gpt3__microkernel_vectors(int kc, const float *a, size_t a_si,
                                                         size_t a_sk, const float *b, int ldb,
                                                         float *c, size_t ldc, int add,
                                                         const float *bias, int vectors) {
    GPT3__Vector acc[GPT3__MR][GPT3__NR / GPT3__VEC], b_k[GPT3__NR / GPT3__VEC];
    for (int r = 0; r < GPT3__MR; r++)
        for (int v = 0; v < vectors; v++) acc[r][v] = gpt3__vzero();
    for (int k = 0; k < kc; k++) {
        for (int v = 0; v < vectors; v++) b_k[v] = gpt3__vload(b + (size_t)k * ldb + GPT3__VEC * v);
        for (int r = 0; r < GPT3__MR; r++) {
            GPT3__Vector a_rk = gpt3__vbroadcast(a[r * a_si + k * a_sk]);
            for (int v = 0; v < vectors; v++) acc[r][v] = gpt3__vfma(acc[r][v], a_rk, b_k[v]);
        }
    }
    for (int r = 0; r < GPT3__MR; r++)
        for (int v = 0; v < vectors; v++) {
            float *out = c + r * ldc + GPT3__VEC * v;
            GPT3__Vector base = add    ? gpt3__vload(out)
                                : bias ? gpt3__vload(bias + GPT3__VEC * v)
                                       : gpt3__vzero();
            gpt3__vstore(out, gpt3__vadd(base, acc[r][v]));
        }
}
#endif

/* The micro-kernel for cols VEC, 2 VEC or NR, each its own compiled loop:
   the instruction set's kernel where there is one (see above), else the
   C kernel. */
static GPT3__ALWAYS_INLINE void gpt3__microkernel_widths(int kc, const float *a, size_t a_si,
                                                       size_t a_sk, const float *b, int ldb,
                                                       float *c, size_t ldc, int add,
                                                       const float *bias, int cols) {
#if defined(GPT3__ISA_KERNEL)
#if defined(__AVX512F__)
    if (a_si == 1 || cols == GPT3__VEC)
#endif
    {
        if (cols == GPT3__VEC)
            gpt3__microkernel_vectors(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, 1);
        else if (cols == 2 * GPT3__VEC)
            gpt3__microkernel_vectors(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, 2);
        else
            gpt3__microkernel_vectors(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, GPT3__NR / GPT3__VEC);
        return;
    }
#endif
    if (cols == GPT3__VEC)
        gpt3__microkernel_cols(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, GPT3__VEC);
    else if (cols == 2 * GPT3__VEC)
        gpt3__microkernel_cols(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, 2 * GPT3__VEC);
    else
        gpt3__microkernel_cols(kc, a, a_si, a_sk, b, ldb, c, ldc, add, bias, GPT3__NR);
}

/* A sliver of A, element (r, k) at a.p[r * a.si + k * a.sk], is k-major
   (a.si 1: packed, a.sk = MR, or the transposes read in place) or runs
   along k (a.sk 1: rows read in place). Each has its own loops, with its
   unit stride known to the compiler. The view of A comes by pointer, here
   and in gpt3__tile (C's too): a 24-byte struct passed by value is written
   in two 8-byte halves and read back in one 16-byte load, which the CPU
   cannot forward from the stores. */
static void gpt3__microkernel(int kc, const GPT3__Operand *a, const float *b, int ldb, float *c,
                              size_t ldc, int add, const float *bias, int cols) {
    if (a->sk == 1)
        gpt3__microkernel_widths(kc, a->p, a->si, 1, b, ldb, c, ldc, add, bias, cols);
    else
        gpt3__microkernel_widths(kc, a->p, 1, a->sk, b, ldb, c, ldc, add, bias, cols);
}

/* C, element (i, j) at p[i * ld + j]; where a product overwrites C, row i
   is bias + the sum (bias NULL: the sum), so the bias costs no pass of its own. */
typedef struct { float *p; size_t ld; const float *bias; } GPT3__Output;

/* The columns q_lo .. q_hi-1 (of cols) of an MR x nr tile of C at (i, j),
   a sliver of A times a panel of B nr columns wide: the kernel runs on the
   16-column steps that hold them, straight into C where those exist in C
   and rows is MR, else into a scratch tile whose rows x columns that exist
   are then added to (or, add 0, stored in) C. */
static void gpt3__tile(int kc, const GPT3__Operand *a, const float *b, int nr,
                       const GPT3__Output *c, int i, int j, int rows, int cols, int q_lo,
                       int q_hi, int add) {
    float tile[GPT3__MR * GPT3__NR];
    int q0 = q_lo / GPT3__VEC * GPT3__VEC;
    int width = (q_hi - q0 + GPT3__VEC - 1) / GPT3__VEC * GPT3__VEC;
    const float *bias = c->bias ? c->bias + j + q0 : NULL;
    if (rows == GPT3__MR && q0 + width <= cols) {
        gpt3__microkernel(kc, a, b + q0, nr, c->p + (size_t)i * c->ld + j + q0, c->ld, add,
                          bias, width);
        return;
    }
    gpt3__microkernel(kc, a, b + q0, nr, tile, GPT3__NR, 0, NULL, width);
    for (int r = 0; r < rows; r++) {
        float *row = c->p + (size_t)(i + r) * c->ld + j + q0;
        for (int q = 0; q < gpt3__min(width, cols - q0); q++) {
            if (add)
                row[q] += tile[r * GPT3__NR + q];
            else
                row[q] = (bias ? bias[q] : 0.0f) + tile[r * GPT3__NR + q];
        }
    }
}

/* The attention's products are banded: row i of a block needs only the
   positions x with i + lo <= x < i + hi. Where x is a column of C (band.of
   is GPT3__BAND_C) the tiles wholly outside the band are skipped and those
   at its edges narrowed to the 16-column steps that hold it: the elements
   of C outside the band are left as they were, or, within those steps, get
   their product. Where x is a k of A (GPT3__BAND_A: A is zero outside the
   band) each tile's sum runs over the k of its rows' band only. A tile of
   MR rows takes the union of its rows' bands. */
enum { GPT3__BAND_C, GPT3__BAND_A };
typedef struct { int lo, hi, of; } GPT3__Band;

/* The k of rows i .. i+rows-1 of A that block pc .. pc+kc-1 has to sum:
   k_lo .. k_hi-1, counted from pc. */
static void gpt3__band_k(const GPT3__Band *band, int i, int rows, int pc, int kc, int *k_lo,
                         int *k_hi) {
    *k_lo = 0;
    *k_hi = kc;
    if (!band || band->of != GPT3__BAND_A) return;
    *k_lo = gpt3__max(0, gpt3__min(kc, i + band->lo - pc));
    *k_hi = gpt3__max(*k_lo, gpt3__min(kc, i + rows - 1 + band->hi - pc));
}

/* The columns q_lo .. q_hi-1 of the tile of C at rows i.., columns j..
   j+cols-1 that a band of C keeps (all cols without one; none if q_lo >= q_hi). */
static void gpt3__band_columns(const GPT3__Band *band, int i, int rows, int j, int cols,
                               int *q_lo, int *q_hi) {
    *q_lo = 0;
    *q_hi = cols;
    if (!band || band->of != GPT3__BAND_C) return;
    *q_lo = gpt3__max(0, i + band->lo - j);
    *q_hi = gpt3__min(cols, i + rows - 1 + band->hi - j);
}

/* Asks for C's tile at (i, j) ahead of its turn, while the tile before it
   computes: where C is large it comes from memory (the weight gradients),
   and the micro-kernel would wait for it at its end. */
static void gpt3__prefetch_tile(const GPT3__Output *c, int i, int rows, int j, int cols) {
#if defined(__GNUC__)
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q += 16)
            __builtin_prefetch(c->p + (size_t)(i + r) * c->ld + j + q, 1);
#else
    (void)c, (void)i, (void)rows, (void)j, (void)cols;
#endif
}

/* Whether the whole slivers (MR rows) of A are read where they are, not
   packed, for a K block of kc, in a product whose C is cols wide (the
   whole product's, not a thread's share: a sliver read in place takes the
   C micro-kernel, a packed one may take the AVX-512 one):
     - where A's rows run along k (the forward's x, dinp's dLoss/dout, the
       attention's P and dS), a cache line holds 16 k of one row: read in
       place, a sliver costs the reads of packing it and saves the copy,
       if its rows are at least IN_PLACE_K long and at most IN_PLACE_N
       columns use it. Shorter rows (the scores and dP, K = hs = 64: 4
       cache lines a row) are packed still: too short for the prefetcher
       to learn. Wider products (the LM head's forward: 50,257 columns)
       use a sliver hundreds of times, and read it faster from its copy;
     - where A's columns run along its rows (k-major: the weight gradients'
       dLoss/dout^T, the attention's dS^T and P^T), every k is a cache line of
       its own, and a sliver that many tiles use is better copied: in place
       only for at most 64 columns (the attention's dK and dV, two tiles). */
#ifndef GPT3_IN_PLACE_K
#define GPT3_IN_PLACE_K 128
#endif
#ifndef GPT3_IN_PLACE_N
#define GPT3_IN_PLACE_N 768
#endif
static int gpt3__a_in_place(GPT3__Operand a, int kc, int cols) {
    if (a.sk == 1) return kc >= GPT3_IN_PLACE_K && cols <= GPT3_IN_PLACE_N;
    return a.si == 1 && cols <= 64;
}

/* The width of B's panels for nc columns: NR, or two vectors where nc is a
   multiple of two but not of NR (AVX-512: 32, not 48), so that a head of
   64 takes two whole 32-column tiles rather than 48 and 16. */
static int gpt3__panel_width(int nc) {
    return nc % GPT3__NR != 0 && nc % (2 * GPT3__VEC) == 0 ? 2 * GPT3__VEC : GPT3__NR;
}

/* One panel of B, columns jc..jc+nc-1 by k pc..pc+kc-1, times rows i0..i1
   of A: B is copied, then each MC rows of A, then every tile. The copy of
   rows ic.. of A starts at a_copy + (ic - i0) * a_step: a_step is kc where
   A is kept (copy_a 0: it is there already), 0 where each MC rows are
   copied in turn into one buffer; where in_place, only the slivers of
   fewer than MR rows are copied, and the others read where they are. C +=
   the products (C = bias + them where overwrite and pc is 0). */
static void gpt3__gemm_panel(GPT3__Output c, GPT3__Operand a, GPT3__Operand b, int i0, int i1,
                             int jc, int nc, int pc, int kc, float *a_copy, int a_step,
                             int copy_a, int in_place, int overwrite, const GPT3__Band *band,
                             float *pb) {
    int add = !overwrite || pc > 0, k_lo, k_hi, nr = gpt3__panel_width(nc);
    for (int jr = 0; jr < nc; jr += nr) /* panel by panel: each is read soon after */
        gpt3__pack(pb + (size_t)jr * kc, b, jc + jr, gpt3__min(nr, nc - jr), pc, kc, nr);
    for (int ic = i0; ic < i1; ic += GPT3__MC) {
        int mc = gpt3__min(GPT3__MC, i1 - ic);
        float *pa = a_copy + (size_t)(ic - i0) * a_step;
        if (copy_a && !band && !in_place) /* every sliver of the block in one call */
            gpt3__pack(pa, a, ic, mc, pc, kc, GPT3__MR);
        else if (copy_a) /* sliver by sliver: each its band's k, or only the edge */
            for (int ir = 0; ir < mc; ir += GPT3__MR) {
                int rows = gpt3__min(GPT3__MR, mc - ir);
                if (in_place && rows == GPT3__MR) continue;
                gpt3__band_k(band, ic + ir, rows, pc, kc, &k_lo, &k_hi);
                gpt3__pack(pa + (size_t)ir * kc + (size_t)k_lo * GPT3__MR, a, ic + ir, rows,
                           pc + k_lo, k_hi - k_lo, GPT3__MR);
            }
        for (int ir = 0; ir < mc; ir += GPT3__MR)
            for (int jr = 0; jr < nc; jr += nr) {
                int rows = gpt3__min(GPT3__MR, mc - ir), cols = gpt3__min(nr, nc - jr);
                int q_lo, q_hi;
                gpt3__band_columns(band, ic + ir, rows, jc + jr, cols, &q_lo, &q_hi);
                if (q_lo >= q_hi) continue;
                gpt3__band_k(band, ic + ir, rows, pc, kc, &k_lo, &k_hi);
                if (add) { /* the next tile along the row, or down */
                    if (jr + nr < nc)
                        gpt3__prefetch_tile(&c, ic + ir, rows, jc + jr + nr,
                                            gpt3__min(nr, nc - jr - nr));
                    else if (ir + GPT3__MR < mc)
                        gpt3__prefetch_tile(&c, ic + ir + GPT3__MR,
                                            gpt3__min(GPT3__MR, mc - ir - GPT3__MR), jc,
                                            gpt3__min(nr, nc));
                }
                GPT3__Operand sliver = {pa + (size_t)ir * kc + (size_t)k_lo * GPT3__MR, 1,
                                        GPT3__MR};
                if (in_place && rows == GPT3__MR)
                    sliver = gpt3__at(a, ic + ir, pc + k_lo);
                gpt3__tile(k_hi - k_lo, &sliver, pb + (size_t)jr * kc + (size_t)k_lo * nr, nr,
                           &c, ic + ir, jc + jr, rows, cols, q_lo, q_hi, add);
            }
    }
}

/* The whole product C (M, N) += A (M, K) B (K, N) that a thread takes a
   share of. Every choice that sets the order of a sum (the K blocks, which
   micro-kernel a sliver takes) is made from it, never from the share: the
   results are the same bits for any thread count. */
typedef struct { int M, N, K; } GPT3__Shape;

/* Rows i0..i1 and columns j0..j1 of C += A B (C = A B if overwrite), on
   one thread with its buffers, in BLIS's loop order: a panel of B (KC x NC)
   is copied once and used by every row of the share; each sliver of A is
   then used by NC/NR tiles. The columns go in groups of NC (all in one
   group when A is kept a K block at a time), and each group runs through
   all of K before the next. band is NULL but for the attention. */
static void gpt3__gemm_block(GPT3__Output c, GPT3__Operand a, GPT3__Operand b, GPT3__Shape shape,
                             int i0, int i1, int j0, int j1, int overwrite,
                             const GPT3__Band *band, float *panels) {
    int KC, NC, K = shape.K, rows_all = (i1 - i0 + GPT3__MR - 1) / GPT3__MR * GPT3__MR;
    gpt3__blocks(shape.M, K, &KC, &NC);
    int keep = gpt3__keep_a(i1 - i0, K, KC), group = keep == GPT3__KEEP_BLOCK ? j1 - j0 : NC;
    for (int jg = j0; jg < j1; jg += group)
        for (int pc = 0; pc < K; pc += KC)
            for (int jc = jg; jc < gpt3__min(j1, jg + group); jc += NC) {
                /* A's slivers: kept ones are copied with the first columns */
                int kc = gpt3__min(KC, K - pc);
                float *a_copy = keep == GPT3__KEEP_ALL ? panels + (size_t)rows_all * pc : panels;
                int copy_a = keep == GPT3__KEEP_ALL    ? jc == j0
                             : keep == GPT3__KEEP_BLOCK ? jc == jg
                                                        : 1;
                int in_place = gpt3__a_in_place(a, kc, shape.N);
                gpt3__gemm_panel(c, a, b, i0, i1, jc, gpt3__min(NC, j1 - jc), pc, kc, a_copy,
                                 keep == GPT3__KEEP_NONE ? 0 : kc, copy_a, in_place, overwrite,
                                 band, panels + GPT3__A_FLOATS);
            }
}

/* Floats a thread copies into panels when it takes the rows (or the
   columns) of C that are its share among P threads: A is copied once if
   it is kept, else once for every NC columns the thread has; B once for
   the thread's columns. A sliver read in place counts as copied: most of
   a copy's cost is reading it, and that stays. */
static double gpt3__packing_cost(int M, int N, int K, int P, int by_rows) {
    int rows = by_rows ? (M + P - 1) / P : M, kc_block, nc_block;
    double cols = by_rows ? N : (double)N / P;
    gpt3__blocks(M, K, &kc_block, &nc_block);
    double a_copies = gpt3__keep_a(rows, K, kc_block) == GPT3__KEEP_NONE ? ceil(cols / nc_block) : 1;
    return (double)rows * K * a_copies + (double)K * cols;
}

/* C += A B over the threads: each takes a share of the rows or of the
   columns of C (whole tiles), whichever copies fewer floats. */
static void gpt3__gemm(GPT3__Output c, GPT3__Operand a, GPT3__Operand b, int M, int N, int K,
                       int overwrite, const GPT3Scratch *scratch) {
    int P = scratch->threads;
    int by_rows = N <= GPT3__NR || (M > GPT3__MR && gpt3__packing_cost(M, N, K, P, 1) <
                                                      gpt3__packing_cost(M, N, K, P, 0));
    int unit = by_rows ? GPT3__MR : GPT3__NR, extent = by_rows ? M : N;
    GPT3__Shape shape = {M, N, K};
    #pragma omp parallel num_threads(gpt3__min(P, (extent + unit - 1) / unit))
    {
        int lo, hi;
        float *panels = scratch->memory + (size_t)gpt3__thread_range(extent, unit, &lo, &hi) *
                                              scratch->floats_per_thread;
        if (by_rows)
            gpt3__gemm_block(c, a, b, shape, lo, hi, 0, N, overwrite, NULL, panels);
        else
            gpt3__gemm_block(c, a, b, shape, 0, M, lo, hi, overwrite, NULL, panels);
    }
}

/* With a few rows (generation: one token) each weight is used once, speed
   is memory bandwidth, and packing would only add traffic: the reference
   versions are then the fast ones. */
#define GPT3__FEW_ROWS 4

/* = gpt3__matmul_forward_reference (test_gpt3.c holds it to 1e-5). */
static void gpt3__matmul_forward(float *out, const float *inp, const float *weight,
                                 const float *bias, int B, int T, int C, int OC,
                                 const GPT3Scratch *scratch) {
    /* out (B,T,OC), inp (B,T,C), weight (OC,C), bias (OC) or NULL */
    int N = B * T;
    if (N <= GPT3__FEW_ROWS) {
        gpt3__matmul_forward_reference(out, inp, weight, bias, B, T, C, OC);
        return;
    }
    GPT3__Output y = {out, (size_t)OC, bias}; /* out = bias + x W^T */
    GPT3__Operand x = {inp, (size_t)C, 1}, wt = {weight, (size_t)C, 1};
    gpt3__gemm(y, x, wt, N, OC, C, 1, scratch);
}

/* = out + gpt3__matmul_forward_reference's product, no bias (test_gpt3.c
   holds it to 1e-5). Packed at any N: its one user, LoRA's B branch, has
   K = r, so a row's weights are a few floats, not a bandwidth-bound pass. */
static void gpt3__matmul_forward_add(float *out, const float *inp, const float *weight, int N,
                                     int C, int OC, const GPT3Scratch *scratch) {
    /* out (N,OC) +=, inp (N,C), weight (OC,C) */
    GPT3__Output y = {out, (size_t)OC, NULL};
    GPT3__Operand x = {inp, (size_t)C, 1}, wt = {weight, (size_t)C, 1};
    gpt3__gemm(y, x, wt, N, OC, C, 0, scratch);
}

/* = gpt3__matmul_backward_reference (test_gpt3.c holds it to 1e-5). */
static void gpt3__matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int B, int T, int C,
                                  int OC, const GPT3Scratch *scratch) {
    /* as gpt3__matmul_backward_reference: dinp (B,T,C) +=, dweight (OC,C) +=,
       dbias (OC) +=, any may be NULL; dout (B,T,OC), inp (B,T,C), weight (OC,C) */
    int N = B * T;
    if (N <= GPT3__FEW_ROWS) {
        gpt3__matmul_backward_reference(dinp, dweight, dbias, dout, inp, weight, B, T, C, OC);
        return;
    }
    if (dinp) { /* dinp (N,C) += dout (N,OC) W (OC,C) */
        GPT3__Output dx = {dinp, (size_t)C, NULL};
        GPT3__Operand d = {dout, (size_t)OC, 1}, w = {weight, 1, (size_t)C};
        gpt3__gemm(dx, d, w, N, C, OC, 0, scratch);
    }
    if (dweight) { /* dW (OC,C) += dout^T (OC,N) inp (N,C) */
        GPT3__Output dw = {dweight, (size_t)C, NULL};
        GPT3__Operand dt = {dout, 1, (size_t)OC}, x = {inp, 1, (size_t)C};
        gpt3__gemm(dw, dt, x, OC, C, N, 0, scratch);
    }
    if (!dbias) return;
    #pragma omp parallel num_threads(scratch->threads)
    {
        int lo, hi;
        gpt3__thread_range(OC, 1, &lo, &hi);
        for (int n = 0; n < N; n++)
            for (int o = lo; o < hi; o++) dbias[o] += dout[(size_t)n * OC + o];
    }
}


/* The fast kernels take a block of GPT3_QUERY_BLOCK query rows t0 .. t1-1
   of one head at a time, and the keys they may see, start(t0) .. t1-1, so
   every product is a matrix product for the packed matmul above:
       S = Q K^T,  O = P V                       (forward)
       dP = dO V^T,  dQ += dS K,  dK += dS^T Q,  dV += P^T dO  (backward)
   where P holds the probabilities (times the dropout scales) and dS the
   score gradients, both zero outside each row's band. The products skip
   the tiles that the band leaves out, and the sums run in another order
   than the reference's (the test holds them to it). Each block copies
   (packs) the keys and values it sees, so larger blocks copy less; 256
   rows is where that stops paying. The scratch is two blocks of rows,
   4.7 MB a thread at T 2048.
   The heads are shared out among the threads, and each thread takes its
   heads a block at a time: block t0 of each of its heads, then block
   t0 + 256 of each. A block reads its 256 positions' q, k and v (and
   dLoss/dout) from memory, a 256-byte piece of each 9 KB row of qkv; so a
   thread reads the same rows for all its heads close together in time,
   while they are in the cache. A head's results do not change: its
   blocks run in the same order, on one thread. */
#ifndef GPT3_QUERY_BLOCK
#define GPT3_QUERY_BLOCK 256
#endif

/* Floats of per-thread scratch the fast attention needs at length T: the
   matmul's panels and two blocks of rows (S or dP, and P). */
static size_t gpt3__attention_scratch_floats(int T) {
    return GPT3__PANEL_FLOATS + 2 * (size_t)GPT3_QUERY_BLOCK * ((size_t)T + GPT3_QUERY_BLOCK);
}

/* A workspace's parts: the matmul's panels, then two blocks of
   QUERY_BLOCK rows of T + QUERY_BLOCK floats (S or dP, and P). */
static void gpt3__attention_work_parts(float *work, int T, float **scores, float **probs) {
    *scores = work + GPT3__PANEL_FLOATS;
    *probs = *scores + (size_t)GPT3_QUERY_BLOCK * (T + GPT3_QUERY_BLOCK);
}

/* This thread's scratch, or NULL (the reference path) when there is none
   or it is too small for T. */
static float *gpt3__attention_workspace(const GPT3Scratch *scratch, int T) {
    if (!scratch || scratch->floats_per_thread < gpt3__attention_scratch_floats(T)) return NULL;
    return scratch->memory + (size_t)gpt3__thread_id() * scratch->floats_per_thread;
}

/* One head's query rows t0 .. t0+rows-1 see keys k0 .. k0+nk-1. */
typedef struct { int t0, rows, k0, nk; } GPT3__QueryBlock;

static GPT3__QueryBlock gpt3__attention_query_block(int t0, int T, int window) {
    GPT3__QueryBlock q;
    q.t0 = t0;
    q.rows = gpt3__min(GPT3_QUERY_BLOCK, T - t0);
    q.k0 = gpt3__attention_start(window, t0);
    q.nk = t0 + q.rows - q.k0;
    return q;
}

/* The band of a block's products, so that they skip what the causal mask
   and the window zero. Query row r (position t0 + r) sees the keys numbered
   x = s - k0 with r + t0 - k0 - window < x <= r + t0 - k0; seen from key
   x, the rows r that see it are x - (t0 - k0) <= r < x - (t0 - k0) + window. */
static GPT3__Band gpt3__attention_band(GPT3__QueryBlock blk, int window, int of, int rows_are_keys) {
    GPT3__Band band;
    int d = blk.t0 - blk.k0;
    band.lo = rows_are_keys ? -d : d - window + 1;
    band.hi = rows_are_keys ? window - d : d + 1;
    band.of = of;
    return band;
}

/* S (rows, nk) = X[t0..] Y[k0..]^T for one head: rows of X and Y are hs
   floats at x and y, stride floats apart (q or dO, and k or v). */
static void gpt3__attention_block_scores(float *S, const float *x, size_t x_stride, const float *y,
                                         size_t y_stride, GPT3__QueryBlock blk, int hs, int window,
                                         float *panels) {
    GPT3__Output out = {S, (size_t)blk.nk, NULL};
    GPT3__Operand xs = {x + (size_t)blk.t0 * x_stride, x_stride, 1};
    GPT3__Operand ys = {y + (size_t)blk.k0 * y_stride, y_stride, 1};
    GPT3__Band band = gpt3__attention_band(blk, window, GPT3__BAND_C, 0);
    GPT3__Shape shape = {blk.rows, blk.nk, hs};
    gpt3__gemm_block(out, xs, ys, shape, 0, blk.rows, 0, blk.nk, 1, &band, panels);
}

/* A row of a block holds its band at off .. off+n-1. The products read it
   only up to MR - 1 places outside (a tile sums over the union of its MR
   rows' bands, or of its MR keys'), so only those are zeroed. */
static void gpt3__attention_zero_outside(float *row, int nk, int off, int n) {
    int lo = gpt3__max(0, off - (GPT3__MR - 1)), hi = gpt3__min(nk, off + n + GPT3__MR - 1);
    memset(row + lo, 0, (size_t)(off - lo) * sizeof(float));
    memset(row + off + n, 0, (size_t)(hi - off - n) * sizeof(float));
}

/* The query block at t0 of one head: out is the head's (T, hs) slice of
   (T, C), att its (T, span) probabilities, seq its q in (T, 3C). */
static void gpt3__attention_forward_block(float *out, float *att, const float *seq, int t0, int T,
                                          int C, int hs, int window, const GPT3__Dropout *drop,
                                          uint64_t site, uint64_t drop_index, float *work) {
    float *panels = work, *S, *P;
    gpt3__attention_work_parts(work, T, &S, &P);
    size_t stride = 3 * (size_t)C;
    int span = gpt3__attention_span(window, T);
    float scale = 1.0f / sqrtf((float)hs);
    GPT3__QueryBlock blk = gpt3__attention_query_block(t0, T, window);
    gpt3__attention_block_scores(S, seq, stride, seq + C, stride, blk, hs, window, panels);
    for (int r = 0; r < blk.rows; r++) {
        int t = t0 + r, start = gpt3__attention_start(window, t), n = t - start + 1;
        int off = start - blk.k0;
        float *a = att + (size_t)t * span, *p = P + (size_t)r * blk.nk;
        gpt3__attention_softmax(a, S + (size_t)r * blk.nk + off, n, scale);
        for (int j = n; j < span; j++) a[j] = 0.0f;
        for (int j = 0; j < n; j++)
            p[off + j] =
                a[j] * gpt3__dropout_scale(drop, site, drop_index + (uint64_t)t * T + start + j);
        gpt3__attention_zero_outside(p, blk.nk, off, n);
    }
    GPT3__Output o = {out + (size_t)t0 * C, (size_t)C, NULL};
    GPT3__Operand probs = {P, (size_t)blk.nk, 1};
    GPT3__Operand v = {seq + 2 * C + (size_t)blk.k0 * stride, 1, stride};
    GPT3__Band band = gpt3__attention_band(blk, window, GPT3__BAND_A, 0);
    GPT3__Shape shape = {blk.rows, hs, blk.nk};
    gpt3__gemm_block(o, probs, v, shape, 0, blk.rows, 0, hs, 1, &band, panels);
}

/* = gpt3__attention_forward_reference (test_gpt3.c holds it to 1e-5): the
   heads shared out among the threads, each taking its heads a query block
   at a time. */
static void gpt3__attention_forward(float *out, float *att, const float *qkv, int B, int T,
                                    int C, int NH, int window, const GPT3__Dropout *drop,
                                    uint64_t site, const GPT3Scratch *scratch) {
    /* out (B,T,C), att (B,NH,T,span), qkv (B,T,3C) */
    int hs = C / NH, span = gpt3__attention_span(window, T);
    if (!gpt3__attention_workspace(scratch, T)) { /* no room for the blocks: the reference */
        gpt3__attention_forward_reference(out, att, qkv, B, T, C, NH, window, drop, site,
                                          scratch ? scratch->threads : 1);
        return;
    }
    {
        #pragma omp parallel num_threads(scratch->threads)
        {
            int lo, hi; /* this thread's heads, numbered b * NH + h */
            gpt3__thread_range(B * NH, 1, &lo, &hi);
            float *work = gpt3__attention_workspace(scratch, T);
            for (int t0 = 0; t0 < T; t0 += GPT3_QUERY_BLOCK)
                for (int bh = lo; bh < hi; bh++) {
                    int b = bh / NH, h = bh % NH;
                    size_t bt = (size_t)b * T;
                    gpt3__attention_forward_block(out + bt * C + h * hs, att + (size_t)bh * T * span,
                                                  qkv + bt * 3 * C + h * hs, t0, T, C, hs, window,
                                                  drop, site,
                                                  gpt3__attention_drop_index(b, h, 0, NH, T), work);
                }
        }
    }
}

/* The query block at t0 of one head: dseq and seq are the head's q in
   (T, 3C), dout its (T, hs) slice of (T, C), att its (T, span). */
static void gpt3__attention_backward_block(float *dseq, const float *dout, const float *seq,
                                           const float *att, int t0, int T, int C, int hs,
                                           int window, const GPT3__Dropout *drop, uint64_t site,
                                           uint64_t drop_index, float *work) {
    float *panels = work, *dS, *P;
    gpt3__attention_work_parts(work, T, &dS, &P);
    size_t stride = 3 * (size_t)C;
    int span = gpt3__attention_span(window, T);
    float scale = 1.0f / sqrtf((float)hs);
    GPT3__QueryBlock blk = gpt3__attention_query_block(t0, T, window);
    gpt3__attention_block_scores(dS, dout, (size_t)C, seq + 2 * C, stride, blk, hs, window, panels);
    for (int r = 0; r < blk.rows; r++) {
        int t = t0 + r, start = gpt3__attention_start(window, t), n = t - start + 1;
        int off = start - blk.k0;
        float *ds = dS + (size_t)r * blk.nk, *p = P + (size_t)r * blk.nk;
        gpt3__attention_softmax_backward(ds + off, p + off, att + (size_t)t * span, n, scale, drop,
                                         site, drop_index + (uint64_t)t * T + start);
        gpt3__attention_zero_outside(ds, blk.nk, off, n);
        gpt3__attention_zero_outside(p, blk.nk, off, n);
    }
    const float *q = seq + (size_t)t0 * stride, *k = seq + C + (size_t)blk.k0 * stride;
    const float *d_o = dout + (size_t)t0 * C;
    GPT3__Operand ds_rows = {dS, (size_t)blk.nk, 1}, ds_cols = {dS, 1, (size_t)blk.nk};
    GPT3__Operand p_cols = {P, 1, (size_t)blk.nk};
    GPT3__Operand k_cols = {k, 1, stride}, q_cols = {q, 1, stride}, do_cols = {d_o, 1, (size_t)C};
    GPT3__Output dq = {dseq + (size_t)t0 * stride, stride, NULL};
    GPT3__Output dk = {dseq + C + (size_t)blk.k0 * stride, stride, NULL};
    GPT3__Output dv = {dseq + 2 * C + (size_t)blk.k0 * stride, stride, NULL};
    GPT3__Band by_query = gpt3__attention_band(blk, window, GPT3__BAND_A, 0);
    GPT3__Band by_key = gpt3__attention_band(blk, window, GPT3__BAND_A, 1);
    GPT3__Shape dq_shape = {blk.rows, hs, blk.nk}, dkv_shape = {blk.nk, hs, blk.rows};
    gpt3__gemm_block(dq, ds_rows, k_cols, dq_shape, 0, blk.rows, 0, hs, 0, &by_query, panels);
    gpt3__gemm_block(dk, ds_cols, q_cols, dkv_shape, 0, blk.nk, 0, hs, 0, &by_key, panels);
    gpt3__gemm_block(dv, p_cols, do_cols, dkv_shape, 0, blk.nk, 0, hs, 0, &by_key, panels);
}

/* = gpt3__attention_backward_reference (test_gpt3.c holds it to 1e-5). */
static void gpt3__attention_backward(float *dqkv, float *datt, const float *dout,
                                     const float *qkv, const float *att, int B, int T,
                                     int C, int NH, int window, const GPT3__Dropout *drop,
                                     uint64_t site, const GPT3Scratch *scratch) {
    /* as gpt3__attention_backward_reference: dqkv (B,T,3C) +=, datt unused here,
       dout (B,T,C), qkv (B,T,3C), att (B,NH,T,span) */
    int hs = C / NH, span = gpt3__attention_span(window, T);
    if (!gpt3__attention_workspace(scratch, T)) { /* no room for the blocks: the reference */
        gpt3__attention_backward_reference(dqkv, datt, dout, qkv, att, B, T, C, NH, window, drop,
                                           site, scratch ? scratch->threads : 1);
        return;
    }
    {
        #pragma omp parallel num_threads(scratch->threads)
        {
            int lo, hi; /* this thread's heads, as in the forward */
            gpt3__thread_range(B * NH, 1, &lo, &hi);
            float *work = gpt3__attention_workspace(scratch, T);
            for (int t0 = 0; t0 < T; t0 += GPT3_QUERY_BLOCK)
                for (int bh = lo; bh < hi; bh++) {
                    int b = bh / NH, h = bh % NH;
                    size_t bt = (size_t)b * T;
                    gpt3__attention_backward_block(dqkv + bt * 3 * C + h * hs, dout + bt * C + h * hs,
                                                   qkv + bt * 3 * C + h * hs,
                                                   att + (size_t)bh * T * span, t0, T, C, hs,
                                                   window, drop, site,
                                                   gpt3__attention_drop_index(b, h, 0, NH, T), work);
                }
        }
    }
}

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

GPT3DEF const char *gpt3_strerror(int code) {
    static const char *messages[GPT3_NUM_ERRORS] = {
        "success",
        "invalid argument: a required pointer is NULL or a value is out of range",
        "invalid config: every size must be at least 1, channels must divide by "
        "num_heads, local_window must be 0 or more; at most 32768 channels, a context of "
        "2^24, a vocabulary of 2^28 and 1e15 parameters",
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
        "encoder.json or vocab.bpe is malformed, or the two do not belong together",
        "the file is corrupt: its header holds values no gpt3.h writes, or its length is not "
        "the one its header gives",
        "not a regular file (a folder, or a pipe?): give the path of the file itself",
        "the model has LoRA adapters that are not merged: call gpt3_lora_merge first (a checkpoint "
        "holds the model's weights alone, and would leave them out)",
    };
    if (code < 0 || code >= GPT3_NUM_ERRORS) return "unknown error code";
    return messages[code];
}

#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#elif defined(_MSC_VER)
#pragma warning(pop)
#endif

/* ======================================================================== */
/* Data parallelism                                                         */
/* ======================================================================== */

GPT3DEF int gpt3_batch_share(int B, int rank, int ranks, int *first, int *count) {
    if (!first || !count || B < 1 || ranks < 1 || rank < 0 || rank >= ranks || B % ranks != 0)
        return GPT3_ERR_ARGUMENT;
    *count = B / ranks;
    *first = rank * *count;
    return GPT3_OK;
}

#ifdef GPT3_MPI
/* Floats a message: 4 MB. MPI's counts are int, and pieces that stay in
   cache go faster: Open MPI's shared-memory all-reduce of GPT-3 Small's
   500 MB of gradients took 45% of a step as one buffer and 13% in 4 MB
   pieces (doc/parallel.md). */
#define GPT3__MPI_PIECE ((size_t)1 << 20)

GPT3DEF int gpt3_mpi_average_gradients(GPT3 *m, MPI_Comm comm) {
    int ranks;
    if (!m || !m->grads || MPI_Comm_size(comm, &ranks) != MPI_SUCCESS) return GPT3_ERR_ARGUMENT;
    for (size_t i = 0; i < m->num_parameters; i += GPT3__MPI_PIECE) {
        int n = (int)(m->num_parameters - i < GPT3__MPI_PIECE ? m->num_parameters - i : GPT3__MPI_PIECE);
        if (MPI_Allreduce(MPI_IN_PLACE, m->grads + i, n, MPI_FLOAT, MPI_SUM, comm) != MPI_SUCCESS)
            return GPT3_ERR_ARGUMENT;
    }
    float scale = 1.0f / (float)ranks;
    for (size_t i = 0; i < m->num_parameters; i++) m->grads[i] *= scale;
    return GPT3_OK;
}

/* Is this rank's share of the moments the one comm's size and its rank
   give it? Asked of every rank together, so that none goes on alone. */
static int gpt3__mpi_sharded(const GPT3 *m, MPI_Comm comm, int *rank, int *ranks) {
    size_t first = 0, count = 0;
    int ok = MPI_Comm_rank(comm, rank) == MPI_SUCCESS && MPI_Comm_size(comm, ranks) == MPI_SUCCESS;
    ok = ok && m && m->params && gpt3_parameter_share(m->num_parameters, *rank, *ranks, &first, &count) == GPT3_OK &&
         m->adam_first == first && m->adam_count == count;
    int all = 0;
    return MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, comm) == MPI_SUCCESS && all;
}

GPT3DEF int gpt3_mpi_gather_parameters(GPT3 *m, MPI_Comm comm) {
    int rank, ranks;
    if (!gpt3__mpi_sharded(m, comm, &rank, &ranks)) return GPT3_ERR_ARGUMENT;
    for (int r = 0; r < ranks; r++) {
        size_t first, count;
        gpt3_parameter_share(m->num_parameters, r, ranks, &first, &count);
        for (size_t at = first; at < first + count; at += GPT3__MPI_PIECE) {
            int n = (int)(first + count - at < GPT3__MPI_PIECE ? first + count - at : GPT3__MPI_PIECE);
            if (MPI_Bcast(m->params + at, n, MPI_FLOAT, r, comm) != MPI_SUCCESS) return GPT3_ERR_ARGUMENT;
        }
    }
    return GPT3_OK;
}

typedef struct { MPI_Comm comm; int ranks, started; float *piece; } GPT3__MomentsCollector;

/* Rank 0's writer of the moments: first m, then v, each in the order of
   the flat layout: its own share, then each other rank's as it arrives. */
static void gpt3__collect_moments(GPT3__AtomicFile *file, const GPT3 *m, void *ctx) {
    GPT3__MomentsCollector *c = (GPT3__MomentsCollector *)ctx;
    int go = 1;
    c->started = 1;
    MPI_Bcast(&go, 1, MPI_INT, 0, c->comm); /* the others start sending */
    for (int which = 0; which < 2; which++) {
        gpt3__atomic_write_le(file, which ? m->adam_v : m->adam_m, m->adam_count, 4);
        for (int r = 1; r < c->ranks; r++) {
            size_t first, count;
            gpt3_parameter_share(m->num_parameters, r, c->ranks, &first, &count);
            for (size_t done = 0; done < count; done += GPT3__MPI_PIECE) {
                int n = (int)(count - done < GPT3__MPI_PIECE ? count - done : GPT3__MPI_PIECE);
                MPI_Recv(c->piece, n, MPI_FLOAT, r, which, c->comm, MPI_STATUS_IGNORE);
                gpt3__atomic_write_le(file, c->piece, (size_t)n, 4);
            }
        }
    }
}

/* The other ranks' side: their share of m, then of v, piece by piece. */
static void gpt3__send_moments(const GPT3 *m, MPI_Comm comm) {
    for (int which = 0; which < 2; which++)
        for (size_t done = 0; done < m->adam_count; done += GPT3__MPI_PIECE) {
            int n = (int)(m->adam_count - done < GPT3__MPI_PIECE ? m->adam_count - done : GPT3__MPI_PIECE);
            MPI_Send((which ? m->adam_v : m->adam_m) + done, n, MPI_FLOAT, 0, which, comm);
        }
}

GPT3DEF int gpt3_mpi_save_run(const GPT3 *m, const GPT3TrainState *st, const char *checkpoint_path,
                              MPI_Comm comm) {
    int rank, ranks, go = 0, rc = GPT3_OK;
    if (!gpt3__mpi_sharded(m, comm, &rank, &ranks)) return GPT3_ERR_ARGUMENT;
    int mine[3] = {st && checkpoint_path && st->step >= 0, m->adam_m != NULL, m->adam_m == NULL}, all[3];
    if (MPI_Allreduce(mine, all, 3, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS || !all[0] || !(all[1] || all[2]))
        return GPT3_ERR_ARGUMENT; /* every rank's arguments good, and all hold moments or none */
    if (rank == 0) {
        GPT3__MomentsCollector c = {comm, ranks, 0, (float *)GPT3_MALLOC(GPT3__MPI_PIECE * sizeof(float))};
        rc = c.piece ? gpt3__save_run(m, st, checkpoint_path, gpt3__collect_moments, &c) : GPT3_ERR_NOMEM;
        if (!c.started) MPI_Bcast(&go, 1, MPI_INT, 0, comm); /* nothing to send */
        GPT3_FREE(c.piece);
    } else {
        MPI_Bcast(&go, 1, MPI_INT, 0, comm);
        if (go) gpt3__send_moments(m, comm);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, comm);
    return rc;
}
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
