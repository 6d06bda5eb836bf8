/* fuzz_cli.c - libFuzzer harnesses for demo.c's own input parsers (the
   command-line tool's, not gpt3.h's: dev/fuzz_gpt3.c fuzzes those).

   demo.c is included whole (its main renamed demo_main), so the harnesses
   call its static functions directly. One file, one harness per build,
   picked with -DHARNESS=<name>:

     tsv          load_tsv (finetune's classify and generate data): the
                  training file, then (after a NUL byte in the input) a
                  dev file read with the training labels (is_train 0), or
                  one file split as --data does; then labels_learnable and
                  make_batch over every example. Byte 0: bit 0 generate,
                  bit 1 GPT-2's tokenizer (else bytes), bit 2 --data's
                  split, bits 3-7 the context (max_len 1 .. 24, 32 .. 4096)
     conll        load_conll (finetune's NER data), the same way
     eval         load_eval_set (eval's JSONL: json_member, json_text,
                  json_texts, eval_item); then eval_one's text work on the
                  first items: continuation, the longest choice, drawn
                  demonstrations and eval_context's prompt (byte tokenizer,
                  a context of 48). Byte 0: the number of demonstrations
     hfconfig     hf_read_config (convert's config.json: hf_parse_config,
                  hf_positive, hf_activation, json_document)
     safetensors  st_open on a folder holding model.safetensors (st_read_header,
                  st_parse_header, st_entry, the duplicate check), then
                  hf_check_tensors, hf_not_converted and hf_read_parameters
                  against fixtures/hf_tiny/config.json's model. The input is
                  the header JSON, then (optionally) a 0xFF byte and the data
                  section's length (3 bytes, little-endian; the data is a
                  pattern); an input that starts with 0xFE is the whole file
     shards       st_shard_names, then st_open on a folder holding the index
                  (the input) beside fixtures/hf_tiny/sharded's two shards;
                  then the same checks and reads
     predict      predict's readers: reader_next, classify_item /
                  classify_batch, conll_line / text_line / ner_batch,
                  predict_generate, predict_summary, predict_report, with
                  tiny models (V 256, T 16) that predict_open loads once:
                  a 4-class head, a binary head, a 7-tag head, no head.
                  Byte 0: bits 0-1 the model, bit 2 the second format
                  (jsonl, text), bits 3-5 --batch - 1; byte 1: bits 0-3
                  --max-tokens, bits 4-6 --seed, bit 7 --temperature 0.8
     flags        parse_flags on argv from the input (split at NUL bytes)
                  with cmd_train's table (and --prompt, --text, --trainable,
                  --shots, --temperature, --top-p), then parse_trainable,
                  parse_shots, check_train_args, train_config and the
                  size checks cmd_train makes before it reads a file
     seeds        not a fuzzer: a program that writes seed corpora from the
                  repository's files (run it from the repository root as
                  ./fuzz_cli_seeds OUTDIR)

   Build (clang, no OpenMP), from the repository root:

     clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer -I. -DHARNESS=tsv dev/fuzz_cli.c -lm -o fuzz_tsv
     clang -g -O1 -fsanitize=address,undefined -I. -DHARNESS=seeds \
           dev/fuzz_cli.c -lm -o fuzz_cli_seeds && ./fuzz_cli_seeds corpus

   Run from the repository root (the harnesses read fixtures/gpt2 and
   fixtures/hf_tiny; FUZZ_GPT2_DIR and FUZZ_HF_DIR point elsewhere):

     mkdir -p crashes && ./fuzz_tsv -max_total_time=240 -rss_limit_mb=2048 \
           -malloc_limit_mb=512 -artifact_prefix=crashes/ corpus/tsv

   demo.c's messages go to stderr; FUZZ_QUIET=1 sends them to /dev/null
   (its `stderr` is a macro here: libFuzzer's lines, the sanitizers'
   reports and this file's checks still reach stderr). predict's output
   (stdout) always goes to /dev/null.

   Every harness counts the bytes demo.c and gpt3.h ask for (malloc,
   calloc and realloc are routed through fuzz_malloc, fuzz_calloc and
   fuzz_realloc; a realloc counts its new size) while it handles one input,
   and aborts, printing the stack, when the total passes
   FUZZ_ALLOC_BUDGET_MB (default 64) plus 16 times the input's size: a
   small file that makes the CLI allocate hundreds of megabytes is a
   finding even where malloc would succeed. Files go to $TMPDIR (default
   /tmp), one name per process. */

/* Every header demo.c and gpt3.h include, first: the allocation macros
   below must not reach them. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __AVX__
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

static void *fuzz_malloc(size_t n);
static void *fuzz_calloc(size_t count, size_t n);
static void *fuzz_realloc(void *p, size_t n);
#define GPT3_MALLOC(size) fuzz_malloc(size)
#define GPT3_CALLOC(count, size) fuzz_calloc(count, size)
#define GPT3_FREE(ptr) free(ptr)
#define malloc(n) fuzz_malloc(n)
#define calloc(count, n) fuzz_calloc(count, n)
#define realloc(p, n) fuzz_realloc(p, n)
/* demo.c's (and gpt3.h's) messages: stderr, or /dev/null under FUZZ_QUIET */
static FILE *fuzz_demo_err(void);
#undef stderr
#define stderr fuzz_demo_err()
#define main demo_main
#include "../demo.c"
#undef main
#undef stderr
#define stderr stderr
#undef malloc
#undef calloc
#undef realloc

/* ---- which harness ---- */
#define FUZZ_ID_tsv 1
#define FUZZ_ID_conll 2
#define FUZZ_ID_eval 3
#define FUZZ_ID_hfconfig 4
#define FUZZ_ID_safetensors 5
#define FUZZ_ID_shards 6
#define FUZZ_ID_predict 7
#define FUZZ_ID_flags 8
#define FUZZ_ID_seeds 9
#define FUZZ_CAT2(a, b) a##b
#define FUZZ_CAT(a, b) FUZZ_CAT2(a, b)
#ifndef HARNESS
#error "build with -DHARNESS=tsv|conll|eval|hfconfig|safetensors|shards|predict|flags|seeds"
#endif
#define FUZZ_ID FUZZ_CAT(FUZZ_ID_, HARNESS)
#if FUZZ_ID < 1 || FUZZ_ID > 9
#error "unknown HARNESS"
#endif

#include "fuzz_common.h"

/* ---- helpers (each harness uses some of them) ---- */

/* Where demo.c's messages go: FUZZ_QUIET=1 sends them to /dev/null
   (libFuzzer's, the sanitizers' and this file's still reach stderr). */
static FILE *fuzz_demo_err(void) {
    static FILE *null;
    static int ready;
    if (!ready) {
        const char *env = getenv("FUZZ_QUIET");
        ready = 1;
        if (env && atoi(env)) null = fopen("/dev/null", "w");
    }
    return null ? null : stderr;
}

/* Opens /dev/null for demo.c's messages now, if FUZZ_QUIET says so (its
   first message would otherwise). */
FUZZ_UNUSED static void fuzz_quiet(void) { (void)fuzz_demo_err(); }

/* A folder of this process (made once): $TMPDIR/gpt3fuzz.<pid>.<tag> */
FUZZ_UNUSED static const char *fuzz_folder(const char *tag) {
    const char *dir = fuzz_path(tag);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) { perror(dir); abort(); }
    return dir;
}

/* src copied to dst (both paths); abort if it cannot be. */
FUZZ_UNUSED static void fuzz_copy(const char *src, const char *dst) {
    size_t n;
    unsigned char *data = read_file(src, &n);
    if (!data) {
        fprintf(stderr, "cannot read %s: run from the repository root (or set FUZZ_HF_DIR)\n", src);
        abort();
    }
    fuzz_write(dst, data, n);
    free(data);
}

/* Reads bytes from the input, zeros once it runs out. */
typedef struct { const uint8_t *p; size_t n; } FuzzInput;
FUZZ_UNUSED static unsigned fuzz_u8(FuzzInput *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

#ifndef FUZZ_GPT2_DIR
#define FUZZ_GPT2_DIR "fixtures/gpt2"
#endif
#ifndef FUZZ_HF_DIR
#define FUZZ_HF_DIR "fixtures/hf_tiny"
#endif

FUZZ_UNUSED static const char *fuzz_hf_dir(void) {
    const char *dir = getenv("FUZZ_HF_DIR");
    return dir && *dir ? dir : FUZZ_HF_DIR;
}

/* The byte tokenizer (gpt2 0) or GPT-2's, loaded at the first call. */
FUZZ_UNUSED static GPT3Tokenizer *fuzz_tokenizer(int gpt2) {
    static GPT3Tokenizer tok[2];
    static int ready[2];
    if (!ready[gpt2]) {
        fuzz_alloc_off();
        if (!gpt2) {
            FUZZ_CHECK(gpt3_tokenizer_bytes(&tok[0]) == GPT3_OK);
        } else {
            const char *dir = getenv("FUZZ_GPT2_DIR") ? getenv("FUZZ_GPT2_DIR") : FUZZ_GPT2_DIR;
            char json[1024], bpe[1024];
            snprintf(json, sizeof(json), "%s/encoder.json", dir);
            snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", dir);
            if (gpt3_tokenizer_load(&tok[1], json, bpe) != GPT3_OK) {
                fprintf(stderr, "cannot load GPT-2's tokenizer from %s (set FUZZ_GPT2_DIR)\n", dir);
                abort();
            }
        }
        ready[gpt2] = 1;
    }
    return &tok[gpt2];
}

/* ---- finetune's data: what load_tsv / load_conll promise ---- */

/* Every example of d as the loaders make them for task (max_len the context). */
FUZZ_UNUSED static void fuzz_check_dataset(const Dataset *d, int task, int V, int max_len) {
    FUZZ_CHECK(d->count >= 0 && d->count <= d->capacity);
    FUZZ_CHECK(d->n_labels >= 0 && d->n_labels <= MAX_LABELS);
    for (int k = 0; k < d->n_labels; k++) FUZZ_CHECK(d->labels[k] != NULL);
    for (int i = 0; i < d->count; i++) {
        const Example *e = &d->ex[i];
        FUZZ_CHECK(e->n >= 0 && e->n <= max_len);
        for (int t = 0; t < e->n; t++) FUZZ_CHECK(e->ids[t] >= 0 && e->ids[t] < V);
        if (task == TASK_CLASSIFY) {
            FUZZ_CHECK(e->n >= 1);
            FUZZ_CHECK(e->label >= 0 && e->label < d->n_labels);
        } else if (task == TASK_GENERATE) {
            FUZZ_CHECK(e->targets != NULL);
            for (int t = 0; t < e->n; t++) FUZZ_CHECK(e->targets[t] >= -1 && e->targets[t] < V);
        } else {
            int starts = 0;
            FUZZ_CHECK(e->targets != NULL && e->words != NULL);
            FUZZ_CHECK(e->n_words >= 0 && e->n_words <= MAX_WORDS);
            for (int t = 0; t < e->n; t++) {
                FUZZ_CHECK(e->targets[t] >= -1 && e->targets[t] < d->n_labels);
                starts += e->targets[t] >= 0;
            }
            FUZZ_CHECK(starts == e->n_words); /* a tag on each kept word's first token */
            FUZZ_CHECK(e->n == 0 || e->targets[0] >= 0);
            for (int w = 0; w < e->n_words; w++) FUZZ_CHECK(e->words[w] >= 0 && e->words[w] < d->n_labels);
        }
    }
}

/* Every example through make_batch, B at a time, as run_finetune does. */
FUZZ_UNUSED static void fuzz_batches(const Dataset *d, int task, int V, int max_len) {
    enum { B = 3 };
    int T = max_len > 0 ? max_len : 1;
    int *order = (int *)malloc((size_t)(d->count + 1) * sizeof(int));
    int *inputs = (int *)malloc((size_t)B * T * sizeof(int)), *labels = (int *)malloc((size_t)B * T * sizeof(int));
    int lengths[B];
    FUZZ_CHECK(order && inputs && labels);
    for (int i = 0; i < d->count; i++) order[i] = d->count - 1 - i;
    for (int from = 0; from + B <= d->count; from += B) {
        int got = make_batch(d, order, from, B, task, inputs, lengths, labels);
        FUZZ_CHECK(got >= 1 && got <= T);
        for (int b = 0; b < B; b++) {
            FUZZ_CHECK(lengths[b] >= 1 && lengths[b] <= got);
            for (int t = 0; t < got; t++) FUZZ_CHECK(inputs[b * got + t] >= 0 && inputs[b * got + t] < V);
        }
    }
    free(order);
    free(inputs);
    free(labels);
}

/* The finetune harnesses: byte 0 is the flags, the rest the training file,
   and after a NUL byte a dev file (read with is_train 0). */
FUZZ_UNUSED static void fuzz_finetune_data(const uint8_t *data, size_t size, int ner) {
    fuzz_quiet();
    if (size < 1) return;
    unsigned flags = data[0], m = flags >> 3;
    int task = ner ? TASK_NER : (flags & 1) ? TASK_GENERATE : TASK_CLASSIFY;
    GPT3Tokenizer *tok = fuzz_tokenizer((flags & 2) != 0);
    int split = (flags & 4) != 0, max_len = m < 24 ? (int)m + 1 : 32 << (m - 24), V = tok->vocab_size;
    const uint8_t *body = data + 1, *nul = (const uint8_t *)memchr(body, 0, size - 1);
    size_t n_train = nul ? (size_t)(nul - body) : size - 1;
    const char *train_path = fuzz_path(ner ? "train.conll" : "train.tsv");
    const char *dev_path = fuzz_path(ner ? "dev.conll" : "dev.tsv");
    Dataset train = {0}, dev = {0}, test = {0}, all = {0};
    fuzz_alloc_reset(size, 64);
    json_out_of_memory = 0;
    fuzz_write(train_path, body, n_train);
    if (split) { /* --data: one file, split 80 / 10 / 10 */
        if (load_task_data(task, train_path, tok, &all, 1, max_len) == 0) {
            fuzz_check_dataset(&all, task, V, max_len);
            if (labels_learnable(task, &all, train_path)) {
                int count = all.count, labels = all.n_labels;
                split_dataset(&all, &train, &dev, &test, (int)n_train);
                FUZZ_CHECK(train.count + dev.count + test.count == count);
                FUZZ_CHECK(train.n_labels == labels && all.labels == NULL);
                fuzz_check_dataset(&train, task, V, max_len);
                fuzz_check_dataset(&dev, task, V, max_len);
                fuzz_batches(&train, task, V, max_len);
            }
        }
    } else if (load_task_data(task, train_path, tok, &train, 1, max_len) == 0) {
        fuzz_check_dataset(&train, task, V, max_len);
        fuzz_batches(&train, task, V, max_len);
        if (labels_learnable(task, &train, train_path) && nul) {
            char **labels = train.labels;
            int n_labels = train.n_labels;
            fuzz_write(dev_path, nul + 1, size - 1 - n_train - 1);
            dev.labels = train.labels;
            dev.n_labels = train.n_labels;
            if (load_task_data(task, dev_path, tok, &dev, 0, max_len) == 0) {
                fuzz_check_dataset(&dev, task, V, max_len);
                fuzz_batches(&dev, task, V, max_len);
            }
            FUZZ_CHECK(dev.n_labels == n_labels && dev.labels == labels); /* dev adds no label */
            unlink(dev_path);
        }
    }
    dataset_free(&all, 1);
    dataset_free(&train, 1);
    dataset_free(&dev, 0);
    dataset_free(&test, 0);
    unlink(train_path);
}

/* ---- convert's model: fixtures/hf_tiny's config, a model to read into ---- */

FUZZ_UNUSED static HfConfig *fuzz_hf_config(void) {
    static HfConfig hc;
    static int ready;
    if (!ready) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/config.json", fuzz_hf_dir());
        fuzz_alloc_off();
        if (!hf_read_config(path, &hc)) {
            fprintf(stderr, "cannot read %s: run from the repository root (or set FUZZ_HF_DIR)\n", path);
            abort();
        }
        ready = 1;
    }
    return &hc;
}

FUZZ_UNUSED static GPT3 *fuzz_hf_model(void) {
    static GPT3 m;
    static int ready;
    if (!ready) {
        HfConfig *hc = fuzz_hf_config();
        fuzz_alloc_off();
        FUZZ_CHECK(gpt3_init(&m, &hc->cfg, 7) == GPT3_OK);
        ready = 1;
    }
    return &m;
}

/* A store st_open made: sorted keys, each once; offsets inside the files. */
FUZZ_UNUSED static void fuzz_check_store(const StStore *s) {
    FUZZ_CHECK(s->n_files >= 1 || s->count == 0); /* an empty weight_map: no file, no tensor */
    for (size_t i = 0; i < s->count; i++) {
        const StTensor *t = &s->tensors[i];
        uint64_t size = 0;
        FUZZ_CHECK(t->file >= 0 && t->file < s->n_files);
        FUZZ_CHECK(t->name && t->key && t->dtype);
        FUZZ_CHECK(t->rank >= 0 && t->rank <= ST_MAX_RANK);
        FUZZ_CHECK(t->begin <= t->end);
        FUZZ_CHECK(regular_file(s->paths[t->file], &size));
        FUZZ_CHECK(s->data_start[t->file] + t->end <= size);
        if (i > 0) FUZZ_CHECK(strcmp(s->tensors[i - 1].key, t->key) < 0);
        FUZZ_CHECK(st_find(s, t->key) == t);
    }
}

/* What hf_convert does with a store once config.json is read. */
FUZZ_UNUSED static void fuzz_convert_store(StStore *s) {
    char dtypes[32];
    GPT3 *m = fuzz_hf_model();
    fuzz_check_store(s);
    if (hf_check_tensors(s, &fuzz_hf_config()->cfg, dtypes)) {
        FUZZ_CHECK(strlen(dtypes) < sizeof(dtypes) && dtypes[0]);
        size_t skipped = hf_not_converted(s);
        FUZZ_CHECK(skipped <= s->count);
        (void)hf_read_parameters(s, m);
    }
}

/* ======================================================================== */
#if FUZZ_ID == FUZZ_ID_tsv

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_finetune_data(data, size, 0);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_conll

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_finetune_data(data, size, 1);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_eval

/* eval_one's work before the model scores anything: the choices as
   continuations, the longest, demonstrations, the context that fits. */
static void fuzz_eval_item(const Evaluator *e, const EvalItem *it, int i, int K) {
    int demo[256], longest = 0;
    for (int c = 0; c < it->n_choices; c++) {
        char *text = continuation(it->choices[c]);
        int *ids = NULL;
        size_t got = 0;
        FUZZ_CHECK(text != NULL);
        FUZZ_CHECK(characters(text) >= 1 && characters(text) <= (long)strlen(text));
        FUZZ_CHECK(gpt3_encode(e->tok, text, strlen(text), &ids, &got) == GPT3_OK);
        longest = (int)got > longest ? (int)got : longest;
        free(ids);
        free(text);
    }
    if (longest >= e->m->config.max_seq_len) return; /* eval_one stops here: said */
    draw_demonstrations(e, i, K, demo);
    for (int k = 0; k < K; k++) FUZZ_CHECK(demo[k] >= 0 && demo[k] < e->pool->count && demo[k] != i);
    int *ctx = NULL, cut = 0;
    size_t n_ctx = 0;
    FUZZ_CHECK(eval_context(e, it, demo, K, longest, &ctx, &n_ctx, &cut) == GPT3_OK);
    FUZZ_CHECK(n_ctx <= (size_t)(e->m->config.max_seq_len - longest));
    free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static GPT3 fake; /* eval_context reads the model's context length only */
    fuzz_quiet();
    if (size < 1) return 0;
    GPT3Tokenizer *tok = fuzz_tokenizer(0);
    const char *path = fuzz_path("eval.jsonl");
    EvalSet set;
    fuzz_alloc_reset(size, 64);
    json_out_of_memory = 0;
    fuzz_write(path, data + 1, size - 1);
    int rc = load_eval_set(path, &set);
    FUZZ_CHECK(set.count >= 0 && (set.count == 0 || set.items != NULL));
    if (rc == 0) {
        FUZZ_CHECK(set.count >= 1);
        for (int i = 0; i < set.count; i++) {
            const EvalItem *it = &set.items[i];
            FUZZ_CHECK(it->context && it->context[0]);
            if (set.cloze) FUZZ_CHECK(it->n_choices == 1 && it->label == 0);
            else FUZZ_CHECK(it->n_choices >= 2 && it->n_choices <= EVAL_MAX_CHOICES);
            FUZZ_CHECK(it->label >= 0 && it->label < it->n_choices);
            for (int c = 0; c < it->n_choices; c++) FUZZ_CHECK(it->choices[c] && it->choices[c][0]);
        }
        Evaluator e;
        memset(&e, 0, sizeof(e));
        fake.config.max_seq_len = 48;
        e.m = &fake;
        e.tok = tok;
        e.pool = &set;
        e.same_file = 1;
        e.seed = data[0];
        int K = (int)(data[0] % 5);
        if (K > set.count - 1) K = set.count - 1;
        for (int i = 0; i < set.count && i < 8; i++) fuzz_eval_item(&e, &set.items[i], i, K);
    }
    eval_set_free(&set);
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_hfconfig

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("config.json");
    HfConfig hc;
    fuzz_quiet();
    fuzz_alloc_reset(size, 64);
    json_out_of_memory = 0;
    fuzz_write(path, data, size);
    if (hf_read_config(path, &hc)) {
        const GPT3Config *c = &hc.cfg;
        FUZZ_CHECK(gpt3_check_config(c) == GPT3_OK);
        FUZZ_CHECK(c->channels % c->num_heads == 0 && c->local_window == 0);
        FUZZ_CHECK(memchr(hc.activation, 0, sizeof(hc.activation)) != NULL);
        FUZZ_CHECK(gpt3_num_parameters(c) > 0);
    }
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_safetensors

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    fuzz_hf_model();
    const char *dir = fuzz_folder("st");
    char single[1024], index[1024];
    StStore s;
    snprintf(single, sizeof(single), "%s/model.safetensors", dir);
    snprintf(index, sizeof(index), "%s/model.safetensors.index.json", dir);
    fuzz_alloc_reset(size, 64);
    json_out_of_memory = 0;
    if (size >= 1 && data[0] == 0xFE) {
        fuzz_write(single, data + 1, size - 1); /* the whole file */
    } else { /* the header, then 0xFF and the data's length */
        const uint8_t *ff = (const uint8_t *)memchr(data, 0xFF, size);
        size_t n = ff ? (size_t)(ff - data) : size, n_data = 0;
        FuzzInput in = {ff ? ff + 1 : data + size, ff ? size - n - 1 : 0};
        n_data = fuzz_u8(&in);
        n_data |= fuzz_u8(&in) << 8;
        n_data |= fuzz_u8(&in) << 16;
        n_data &= (1u << 20) - 1;
        unsigned char *file = (unsigned char *)malloc(8 + n + n_data);
        FUZZ_CHECK(file != NULL);
        for (int i = 0; i < 8; i++) file[i] = (unsigned char)((uint64_t)n >> (8 * i));
        if (n) memcpy(file + 8, data, n);
        for (size_t i = 0; i < n_data; i++) file[8 + n + i] = (unsigned char)(i * 131u ^ i >> 7);
        fuzz_write(single, file, 8 + n + n_data);
        free(file);
    }
    if (st_open(&s, dir, single, index)) {
        FUZZ_CHECK(s.n_files == 1);
        fuzz_convert_store(&s);
    }
    st_free(&s);
    unlink(single);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_shards

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *shards[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    static int ready;
    const char *dir = fuzz_folder("shards");
    char single[1024], index[1024];
    fuzz_quiet();
    fuzz_hf_model();
    if (!ready) { /* the fixture's two shards beside the index */
        char src[1024], dst[1024];
        for (int i = 0; i < 2; i++) {
            snprintf(src, sizeof(src), "%s/sharded/%s", fuzz_hf_dir(), shards[i]);
            snprintf(dst, sizeof(dst), "%s/%s", dir, shards[i]);
            fuzz_copy(src, dst);
        }
        ready = 1;
    }
    snprintf(single, sizeof(single), "%s/model.safetensors", dir); /* none */
    snprintf(index, sizeof(index), "%s/model.safetensors.index.json", dir);
    fuzz_alloc_reset(size, 64);
    json_out_of_memory = 0;
    /* st_shard_names on the text as read_file gives it (NUL-terminated) */
    char *text = (char *)malloc(size + 1), **names = NULL;
    size_t count = 0;
    FUZZ_CHECK(text != NULL);
    if (size) memcpy(text, data, size);
    text[size] = 0;
    if (st_shard_names(index, text, size, &names, &count))
        for (size_t i = 0; i < count; i++) FUZZ_CHECK(plain_file_name(names[i]));
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    free(text);
    /* then the whole of st_open */
    StStore s;
    fuzz_write(index, data, size);
    if (st_open(&s, dir, single, index)) fuzz_convert_store(&s);
    st_free(&s);
    unlink(index);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_predict

/* Tiny fine-tuned models, saved once and opened with predict_open:
   classify (4 classes), classify (binary), ner (7 tags), generate. */
static Predictor fuzz_pred[4];

static void fuzz_predict_setup(void) {
    static const char *topic[4] = {"food", "music", "science", "sports"};
    static const char *sentiment[2] = {"negative", "positive"};
    static const char *tags[7] = {"O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"};
    static const char *const *names[3] = {topic, sentiment, tags};
    static const int kinds[3] = {GPT3_HEAD_CLASSES, GPT3_HEAD_BINARY, GPT3_HEAD_TAGS}, classes[3] = {4, 1, 7};
    static const int n_names[3] = {4, 2, 7};
    GPT3Config c;
    memset(&c, 0, sizeof(c));
    c.max_seq_len = 16;
    c.vocab_size = 256;
    c.num_layers = 1;
    c.num_heads = 2;
    c.channels = 8;
    c.local_window = 0;
    fuzz_alloc_off();
    if (!freopen("/dev/null", "w", stdout)) abort(); /* the predictions */
    for (int k = 0; k < 4; k++) {
        char tag[16], path[1024], head[1100];
        GPT3 m;
        snprintf(tag, sizeof(tag), "model%d", k);
        snprintf(path, sizeof(path), "%s/model.ckpt", fuzz_folder(tag));
        snprintf(head, sizeof(head), "%s.head", path);
        FUZZ_CHECK(gpt3_init(&m, &c, 100 + (uint64_t)k) == GPT3_OK);
        FUZZ_CHECK(gpt3_save(&m, path) == GPT3_OK);
        if (k < 3) {
            FUZZ_CHECK(gpt3_head_attach(&m, kinds[k], classes[k], 5) == GPT3_OK);
            FUZZ_CHECK(gpt3_head_set_names(&m, names[k], n_names[k]) == GPT3_OK);
            FUZZ_CHECK(gpt3_head_save(&m, head) == GPT3_OK);
        }
        gpt3_free(&m);
        memset(&fuzz_pred[k], 0, sizeof(fuzz_pred[k]));
        FUZZ_CHECK(predict_open(&fuzz_pred[k], path, NULL));
        FUZZ_CHECK(fuzz_pred[k].task == (k < 2 ? TASK_CLASSIFY : k == 2 ? TASK_NER : TASK_GENERATE));
        FUZZ_CHECK(fuzz_pred[k].K == (k < 3 ? n_names[k] : 0));
        unlink(path);
        unlink(head);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    fuzz_quiet();
    if (!ready) {
        fuzz_predict_setup();
        ready = 1;
    }
    if (size < 2) return 0;
    const char *path = fuzz_path("input");
    Predictor *p = &fuzz_pred[data[0] & 3];
    unsigned b1 = data[1];
    int alt = (data[0] >> 2) & 1, ok = 1;
    fuzz_alloc_reset(size, 64);
    fuzz_write(path, data + 2, size - 2);
    /* a fresh run of the loaded model, as cmd_predict sets one up */
    memset(&p->in, 0, sizeof(p->in));
    p->done = p->empty = p->cut = p->untagged = 0;
    p->progress = 0;
    p->gold = -1;
    p->gold_line = 0;
    p->gold_ids = p->pred_ids = NULL;
    p->n_gold = p->gold_capacity = 0;
    p->format = p->task == TASK_NER ? (alt ? FORMAT_TEXT : FORMAT_CONLL) : alt ? FORMAT_JSONL : FORMAT_TSV;
    p->batch = 1 + ((data[0] >> 3) & 7);
    size_t rows = p->task == TASK_NER ? (size_t)p->batch * p->room : (size_t)p->batch;
    p->inputs = NULL;
    p->lengths = NULL;
    p->probs = NULL;
    if (p->task != TASK_GENERATE) {
        p->inputs = (int *)malloc((size_t)p->batch * p->room * sizeof(int));
        p->lengths = (int *)malloc((size_t)p->batch * sizeof(int));
        p->probs = (float *)malloc(rows * p->K * sizeof(float));
        FUZZ_CHECK(p->inputs && p->lengths && p->probs);
    }
    Sampling w;
    memset(&w, 0, sizeof(w));
    w.max_tokens = (int)(b1 & 15);
    w.seed = (int)((b1 >> 4) & 7);
    p->reserved = w.max_tokens < p->room / 2 ? w.max_tokens : p->room / 2;
    if (p->task == TASK_GENERATE) {
        FUZZ_CHECK(gpt3_sampler_init(&w.sampler, p->m.config.vocab_size, (b1 & 128) ? 0.8f : 0.0f, 0, 1.0f,
                                     (uint64_t)w.seed) == GPT3_OK);
        FUZZ_CHECK(gpt3_kv_init(&w.kv, &p->m) == GPT3_OK);
    }
    FUZZ_CHECK(reader_open(&p->in, path) == 0);
    p->t0 = p->shown = now_seconds();
    ok = p->task == TASK_CLASSIFY ? predict_classify(p) : p->task == TASK_NER ? predict_ner(p)
                                                                               : predict_generate(p, &w);
    FUZZ_CHECK(p->done >= 0 && p->empty >= 0 && p->cut >= 0 && p->untagged >= 0);
    FUZZ_CHECK(p->gold >= -1 && p->gold <= 1);
    for (size_t i = 0; i < p->n_gold; i++) {
        FUZZ_CHECK(p->gold_ids[i] >= -1 && p->gold_ids[i] < p->K);
        FUZZ_CHECK(p->pred_ids[i] >= -1 && p->pred_ids[i] < p->K);
        FUZZ_CHECK((p->gold_ids[i] < 0) == (p->pred_ids[i] < 0));
    }
    if (ok) predict_summary(p, NULL);
    if (ok && p->gold == 1) ok = predict_report(p, NULL);
    reader_close(&p->in);
    gpt3_sampler_free(&w.sampler);
    gpt3_kv_free(&w.kv);
    free(w.out.data);
    free(p->inputs);
    free(p->lengths);
    free(p->probs);
    free(p->gold_ids);
    free(p->pred_ids);
    p->inputs = p->lengths = p->gold_ids = p->pred_ids = NULL;
    p->probs = NULL;
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_flags

/* cmd_train's table (a copy: it is local to cmd_train), with the string
   flags of other commands added: --prompt and --text (texts, not paths),
   --trainable (finetune), --shots (eval), and two floats without a check. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX_ARGS = 64 };
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    fuzz_quiet();
    fuzz_alloc_reset(size, 64);
    char *buf = (char *)malloc(size + 1);
    FUZZ_CHECK(buf != NULL);
    if (size) memcpy(buf, data, size);
    buf[size] = 0;
    for (size_t at = 0; at < size && argc < MAX_ARGS; at += strlen(buf + at) + 1) argv[argc++] = buf + at;
    argv[argc] = NULL;

    TrainArgs a = train_defaults();
    const char *prompt = NULL, *text = NULL, *trainable = NULL, *shots = NULL;
    float temperature = 0.8f, top_p = UNSET_FLOAT;
    /* cmd_train's flags (its table is local to it), and one of each other kind */
    Option opts[] = {
        {"data", OPT_STRING, &a.data, ""}, {"out", OPT_STRING, &a.out, ""}, {"model", OPT_STRING, &a.model, ""},
        {"layers", OPT_INT, &a.layers, ""}, {"channels", OPT_INT, &a.channels, ""}, {"heads", OPT_INT, &a.heads, ""},
        {"context", OPT_INT, &a.context, ""}, {"window", OPT_INT, &a.window, ""}, {"batch", OPT_INT, &a.batch, ""},
        {"seq", OPT_INT, &a.seq, ""}, {"steps", OPT_INT, &a.steps, ""}, {"lr", OPT_FLOAT, &a.lr, ""},
        {"warmup", OPT_INT, &a.warmup, ""}, {"weight-decay", OPT_FLOAT, &a.weight_decay, ""},
        {"beta1", OPT_FLOAT, &a.beta1, ""}, {"beta2", OPT_FLOAT, &a.beta2, ""}, {"eps", OPT_FLOAT, &a.eps, ""},
        {"clip", OPT_FLOAT, &a.clip, ""}, {"eval-every", OPT_INT, &a.eval_every, ""},
        {"eval-batches", OPT_INT, &a.eval_batches, ""}, {"save-every", OPT_INT, &a.save_every, ""},
        {"seed", OPT_INT, &a.seed, ""}, {"resume", OPT_SWITCH, &a.resume, ""},
        {"stop-after", OPT_INT, &a.stop_after, ""}, {"zero", OPT_INT, &a.zero, ""},
        {"prompt", OPT_STRING, &prompt, ""}, {"text", OPT_STRING, &text, ""},
        {"trainable", OPT_STRING, &trainable, ""}, {"shots", OPT_STRING, &shots, ""},
        {"temperature", OPT_FLOAT, &temperature, ""}, {"top-p", OPT_FLOAT, &top_p, ""},
    };
    int rc = parse_flags("train", "The fuzzer's table.", argc, argv, opts, COUNT(opts));
    FUZZ_CHECK(rc >= 0 && rc <= 2);
    if (rc == 0) {
        const char *paths[6] = {a.data, a.out, a.model, trainable, shots, prompt}, *texts[2] = {prompt, text};
        for (int i = 0; i < 5; i++) FUZZ_CHECK(!paths[i] || strlen(paths[i]) <= MAX_PATH);
        for (int i = 0; i < 6; i++)
            FUZZ_CHECK(!paths[i] || i == 1 || (paths[i] >= buf && paths[i] <= buf + size));
        for (int i = 0; i < 2; i++) FUZZ_CHECK(!texts[i] || (texts[i] >= buf && texts[i] <= buf + size));
        FUZZ_CHECK(!isnan(temperature) && (a.resume == 0 || a.resume == 1));
        (void)check_range("generate", "temperature", temperature, 0, 100);
        (void)(isnan(top_p) || check_range("generate", "top-p", top_p, 1e-6, 1));
        if (trainable) {
            int k = -7;
            if (parse_trainable(trainable, &k)) FUZZ_CHECK(k >= -1 && k < 100000);
            else FUZZ_CHECK(k == -7);
        }
        if (shots) {
            int list[16], n = parse_shots(shots, list);
            FUZZ_CHECK(n >= 0 && n <= 16);
            for (int i = 0; i < n; i++) FUZZ_CHECK(list[i] >= 0 && list[i] <= 256);
        }
        /* what cmd_train does with the flags before it reads a file */
        if (check_train_args(&a)) {
            const float reals[6] = {a.lr, a.weight_decay, a.beta1, a.beta2, a.eps, a.clip};
            for (int i = 0; i < 6; i++) FUZZ_CHECK(isfinite(reals[i]) && reals[i] >= 0);
            FUZZ_CHECK(a.beta1 < 1 && a.beta2 < 1 && a.eps > 0 && a.steps >= 1 && a.batch >= 1);
            if (a.warmup == UNSET) a.warmup = a.steps / 20 > 0 ? a.steps / 20 : 1;
            GPT3Config cfg;
            if (train_config(&a, 50257, &cfg) == 0) {
                FUZZ_CHECK(gpt3_check_config(&cfg) == GPT3_OK);
                if (a.seq == UNSET) a.seq = cfg.max_seq_len;
                if (a.seq <= cfg.max_seq_len) {
                    size_t need = gpt3_training_bytes(&cfg, a.batch, a.seq); /* fits_in_memory's */
                    (void)need;
                    (void)gpt3_num_parameters(&cfg);
                }
            }
        }
    }
    free(buf);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_seeds

/* Writes OUTDIR/<harness>/<name> seed files from the repository's own. */
static const char *seed_dir;

static const char *seed_path(const char *harness, const char *name) {
    static char path[1024];
    snprintf(path, sizeof(path), "%s", seed_dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) { perror(path); abort(); }
    snprintf(path, sizeof(path), "%s/%s", seed_dir, harness);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) { perror(path); abort(); }
    snprintf(path, sizeof(path), "%s/%s/%s", seed_dir, harness, name);
    return path;
}

/* The first `lines` lines of a file (all of it if lines < 0), or NULL. */
static unsigned char *seed_lines(const char *path, int lines, size_t *n) {
    unsigned char *p = read_file(path, n);
    if (!p) return NULL;
    for (size_t i = 0; lines >= 0 && i < *n; i++)
        if (p[i] == '\n' && --lines == 0) { *n = i + 1; break; }
    return p;
}

/* head, then the first lines of a, then (if b) a NUL and the first lines of b. */
static void seed_two(const char *harness, const char *name, const unsigned char *head, size_t n_head,
                     const char *a, int lines_a, const char *b, int lines_b) {
    size_t na = 0, nb = 0;
    unsigned char *pa = seed_lines(a, lines_a, &na), *pb = b ? seed_lines(b, lines_b, &nb) : NULL;
    if (!pa || (b && !pb)) { fprintf(stderr, "seeds: no %s: skipped\n", !pa ? a : b); free(pa); free(pb); return; }
    FILE *f = fopen(seed_path(harness, name), "wb");
    FUZZ_CHECK(f != NULL);
    fwrite(head, 1, n_head, f);
    fwrite(pa, 1, na, f);
    if (pb) { fputc(0, f); fwrite(pb, 1, nb, f); }
    FUZZ_CHECK(fclose(f) == 0);
    free(pa);
    free(pb);
}

static void seed_finetune(void) {
    /* flags: bit 0 generate, bit 1 GPT-2, bit 2 split, bits 3-7 the context */
    static const struct { const char *task; unsigned char flags; } tsv[] = {
        {"sentiment", 15 << 3}, {"topic", 31 << 3 | 2}, {"qa", 1 | 7 << 3}, {"qa", 1 | 2 | 27 << 3},
        {"sentiment", 4 | 3 << 3},
    };
    for (size_t i = 0; i < sizeof(tsv) / sizeof(tsv[0]); i++) {
        char a[256], b[256], name[64];
        snprintf(a, sizeof(a), "data/finetune/%s.train.tsv", tsv[i].task);
        snprintf(b, sizeof(b), "data/finetune/%s.dev.tsv", tsv[i].task);
        snprintf(name, sizeof(name), "%s%zu", tsv[i].task, i);
        seed_two("tsv", name, &tsv[i].flags, 1, a, 30, b, 8);
    }
    static const unsigned char conll[] = {15 << 3, 2 | 31 << 3, 2 << 3, 4 | 27 << 3};
    for (size_t i = 0; i < sizeof(conll); i++) {
        char name[64];
        snprintf(name, sizeof(name), "ner%zu", i);
        seed_two("conll", name, &conll[i], 1, "data/finetune/ner.train.conll", 200, "data/finetune/ner.dev.conll", 30);
    }
}

static void seed_eval(void) {
    static const char *files[] = {"mc", "cloze", "mc_train", "mc.expected", "cloze.expected"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path[256];
        unsigned char k = (unsigned char)(i % 5);
        snprintf(path, sizeof(path), "fixtures/eval_tiny/%s.jsonl", files[i]);
        seed_two("eval", files[i], &k, 1, path, -1, NULL, 0);
    }
    static const char hellaswag[] =
        "{\"ind\": 4, \"ctx\": \"A man is sitting on a roof. he\", \"endings\": [\"is using wrap to wrap a pair of "
        "skis.\", \"is ripping level tiles off.\", \"is holding a rubik's cube.\", \"starts pulling up roofing on a "
        "roof.\"], \"label\": \"3\", \"split\": \"val\"}\n"
        "{\"ctx\": \"Esc\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\", \"endings\": [\"a\", \"b\"], "
        "\"label\": 1, \"extra\": {\"deep\": [1, 2.5e-3, -0, true, false, null]}}\n";
    FILE *f = fopen(seed_path("eval", "hellaswag"), "wb");
    FUZZ_CHECK(f != NULL);
    fputc(2, f);
    fputs(hellaswag, f);
    FUZZ_CHECK(fclose(f) == 0);
}

static void seed_convert(void) {
    static const char *models[] = {"model", "model_f16", "model_bf16"};
    char path[512];
    size_t n;
    unsigned char *p;
    snprintf(path, sizeof(path), "%s/config.json", FUZZ_HF_DIR);
    if ((p = read_file(path, &n))) { fuzz_write(seed_path("hfconfig", "hf_tiny"), p, n); free(p); }
    snprintf(path, sizeof(path), "%s/sharded/config.json", FUZZ_HF_DIR);
    if ((p = read_file(path, &n))) { fuzz_write(seed_path("hfconfig", "sharded"), p, n); free(p); }
    static const char gpt2_small[] =
        "{\"activation_function\": \"gelu\", \"n_ctx\": 1024, \"n_embd\": 768, \"n_head\": 12, \"n_inner\": 3072,"
        " \"n_layer\": 12, \"n_positions\": 1024, \"layer_norm_epsilon\": 1e-06, \"model_type\": \"gpt2\","
        " \"scale_attn_weights\": true, \"vocab_size\": 50257, \"add_cross_attention\": false}";
    fuzz_write(seed_path("hfconfig", "gpt2_small"), gpt2_small, sizeof(gpt2_small) - 1);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s.safetensors", FUZZ_HF_DIR, models[i]);
        if (!(p = read_file(path, &n)) || n < 8) { free(p); continue; }
        uint64_t len = 0;
        for (int k = 7; k >= 0; k--) len = len << 8 | p[k];
        if (len > n - 8) { free(p); continue; }
        size_t n_data = n - 8 - (size_t)len;
        unsigned char *s = (unsigned char *)malloc((size_t)len + 4);
        memcpy(s, p + 8, (size_t)len);
        s[len] = 0xFF;
        s[len + 1] = (unsigned char)n_data;
        s[len + 2] = (unsigned char)(n_data >> 8);
        s[len + 3] = (unsigned char)(n_data >> 16);
        fuzz_write(seed_path("safetensors", models[i]), s, (size_t)len + 4);
        free(s);
        if (i == 2) { /* the whole file, once */
            unsigned char *whole = (unsigned char *)malloc(n + 1);
            whole[0] = 0xFE;
            memcpy(whole + 1, p, n);
            fuzz_write(seed_path("safetensors", "whole_bf16"), whole, n + 1);
            free(whole);
        }
        free(p);
    }
    snprintf(path, sizeof(path), "%s/sharded/model.safetensors.index.json", FUZZ_HF_DIR);
    if ((p = read_file(path, &n))) { fuzz_write(seed_path("shards", "index"), p, n); free(p); }
}

static void seed_predict(void) {
    /* byte 0: bits 0-1 the model (0 topic, 1 sentiment, 2 ner, 3 generate), bit 2 the second format, bits 3-5 batch */
    static const struct { unsigned char b0, b1; const char *file; int lines; } seeds[] = {
        {0 | 3 << 3, 0, "data/finetune/topic.dev.tsv", 12},
        {0 | 4 | 0 << 3, 0, "data/finetune/topic.test.tsv", 6},
        {1 | 7 << 3, 0, "data/finetune/sentiment.dev.tsv", 12},
        {1 | 4 | 1 << 3, 0, "README.md", 10},
        {2 | 2 << 3, 0, "data/finetune/ner.dev.conll", 40},
        {2 | 4 | 1 << 3, 0, "data/finetune/sentiment.dev.tsv", 6},
        {3, 8 | 0x10, "data/finetune/qa.dev.tsv", 6},
        {3 | 4, 3 | 0x80, "data/finetune/qa.test.tsv", 4},
    };
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char name[32];
        unsigned char head[2] = {seeds[i].b0, seeds[i].b1};
        snprintf(name, sizeof(name), "seed%zu", i);
        seed_two("predict", name, head, 2, seeds[i].file, seeds[i].lines, NULL, 0);
    }
    static const char conll2003[] = "\x0a\x00-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n"
                                    "German JJ B-NP B-MISC\n\nPeter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n";
    fuzz_write(seed_path("predict", "conll2003"), conll2003, sizeof(conll2003) - 1);
}

static void seed_flags(void) {
    static const char *const seeds[] = {
#define FUZZ_ARGV0 "--data\0data/x\0--model\0tiny\0--batch\0008\0--lr\0001e-4\0--resume\0--shots\0000,1,4,16\0--trainable\0top:2"
#define FUZZ_ARGV1 "--prompt\0Once upon a time\0--temperature\0000.7\0--top-p\0000.9\0--seed\0-5\0--window\0003"
#define FUZZ_ARGV2 "--model\0small\0--layers\0002147483647\0--channels\0000768\0--heads\00012\0--seq\0002048\0--context\0004096"
#define FUZZ_ARGV3 "--beta1\0000.99\0--beta2\0000.999\0--eps\0001e-30\0--clip\0000\0--steps\0001000000000\0--zero\0001"
        FUZZ_ARGV0, FUZZ_ARGV1, FUZZ_ARGV2, FUZZ_ARGV3, "--help",
    };
    static const size_t lengths[] = {sizeof(FUZZ_ARGV0) - 1, sizeof(FUZZ_ARGV1) - 1, sizeof(FUZZ_ARGV2) - 1,
                                     sizeof(FUZZ_ARGV3) - 1, sizeof("--help") - 1};
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char name[32];
        snprintf(name, sizeof(name), "argv%zu", i);
        fuzz_write(seed_path("flags", name), seeds[i], lengths[i]);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTDIR (run from the repository root)\n", argv[0]);
        return 2;
    }
    seed_dir = argv[1];
    fuzz_alloc_off();
    seed_finetune();
    seed_eval();
    seed_convert();
    seed_predict();
    seed_flags();
    return 0;
}

#endif
