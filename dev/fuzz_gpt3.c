/* fuzz_gpt3.c - libFuzzer harnesses for gpt3.h's loaders and parsers.

   One file, one harness per build, picked with -DHARNESS=<name>:

     load       gpt3_load (checkpoint); a tiny loaded model also runs a
                forward and backward pass
     state      gpt3_load_state on a small model made by gpt3_init
     head       gpt3_head_load on a small model, then the head's forward
                and backward pass
     tuning     gpt3_load_tuning on a small model with a head, adapters and
                a soft prompt; one that loads takes a step from what it
                read, one that fails must leave the model as it was
     tokens     gpt3_tokens_load, then the batch loader on what it read
     tokenizer  gpt3_tokenizer_load: the input is encoder.json, a 0xFF
                byte, then vocab.bpe; a tokenizer that loads encodes and
                decodes the input (the round trip must give it back)
     encode     gpt3_encode / gpt3_decode of the input with the byte
                tokenizer and GPT-2's (FUZZ_GPT2_DIR, default
                fixtures/gpt2), and gpt3_decode of the input read as ids
     train      gpt3_tokenizer_train on short text (V = 257 .. 320)
     report     gpt3_report_classes, gpt3_report_entities and
                gpt3_report_format with labels and tag names from the input
     config     a config from the input (edge values included); one that
                gpt3_check_config accepts and that is tiny runs gpt3_init,
                gpt3_forward, gpt3_backward, gpt3_adamw_step and checks the
                KV cache's logits against the forward's (with LoRA
                adapters not merged, or none)
     seeds      not a fuzzer: a program that writes seed corpora
                (run it as ./fuzz_seeds OUTDIR)

   Build (clang, no OpenMP), from the repository root:

     clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
           -fno-omit-frame-pointer -I. -DHARNESS=load dev/fuzz_gpt3.c -lm -o fuzz_load
     clang -g -O1 -fsanitize=address,undefined -I. -DHARNESS=seeds \
           dev/fuzz_gpt3.c -lm -o fuzz_seeds && ./fuzz_seeds corpus

   Run (corpus/<name> from fuzz_seeds; add the fixtures' .ckpt files to corpus/load):

     mkdir -p crashes && ./fuzz_load -max_total_time=240 -rss_limit_mb=2048 \
           -malloc_limit_mb=512 -artifact_prefix=crashes/ corpus/load

   Every harness counts the bytes gpt3.h asks its allocator for while it
   handles one input (GPT3_MALLOC / GPT3_CALLOC are routed through
   fuzz_malloc / fuzz_calloc) and aborts, printing the stack, when the
   total passes FUZZ_ALLOC_BUDGET_MB (default 64, 256 for config) plus 16
   times the input's size: a small file whose header asks for hundreds of
   megabytes is a finding even where malloc would succeed. Files go to
   $TMPDIR (default /tmp), one name per process. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *fuzz_malloc(size_t n);
static void *fuzz_calloc(size_t count, size_t n);
#define GPT3_MALLOC(size) fuzz_malloc(size)
#define GPT3_CALLOC(count, size) fuzz_calloc(count, size)
#define GPT3_FREE(ptr) free(ptr)
#define GPT3_IMPLEMENTATION
#include "gpt3.h"

/* ---- which harness ---- */
#define FUZZ_ID_load 1
#define FUZZ_ID_state 2
#define FUZZ_ID_head 3
#define FUZZ_ID_tokens 4
#define FUZZ_ID_tokenizer 5
#define FUZZ_ID_encode 6
#define FUZZ_ID_train 7
#define FUZZ_ID_report 8
#define FUZZ_ID_config 9
#define FUZZ_ID_seeds 10
#define FUZZ_ID_tuning 11
#define FUZZ_CAT2(a, b) a##b
#define FUZZ_CAT(a, b) FUZZ_CAT2(a, b)
#ifndef HARNESS
#error "build with -DHARNESS=load|state|head|tuning|tokens|tokenizer|encode|train|report|config|seeds"
#endif
#define FUZZ_ID FUZZ_CAT(FUZZ_ID_, HARNESS)
#if FUZZ_ID < 1 || FUZZ_ID > 11
#error "unknown HARNESS"
#endif

#include "fuzz_common.h"

/* ---- helpers (each harness uses some of them) ---- */

/* The input as the file a loader reads (the allocation count starts anew). */
FUZZ_UNUSED static const char *fuzz_input_file(const char *tag, const uint8_t *data, size_t size) {
    const char *path = fuzz_path(tag);
    fuzz_alloc_reset(size, 64);
    fuzz_write(path, data, size);
    return path;
}

/* Reads bytes from the input, zeros once it runs out. */
typedef struct { const uint8_t *p; size_t n; } FuzzInput;
FUZZ_UNUSED static unsigned fuzz_u8(FuzzInput *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}
FUZZ_UNUSED static unsigned fuzz_u16(FuzzInput *in) { unsigned lo = fuzz_u8(in); return lo | fuzz_u8(in) << 8; }

/* Small models shared by the harnesses and the seed writer: the state
   harness needs the same parameters (a state file keeps their fingerprint). */
FUZZ_UNUSED static GPT3Config fuzz_small_config(int channels) {
    GPT3Config c;
    c.max_seq_len = 8;
    c.vocab_size = 16;
    c.num_layers = 2;
    c.num_heads = 2;
    c.channels = channels;
    c.local_window = 3;
    return c;
}

FUZZ_UNUSED static int fuzz_small_model(GPT3 *m, int channels) {
    GPT3Config c = fuzz_small_config(channels);
    return gpt3_init(m, &c, 1234);
}

/* The small model a harness loads files into, made at its first input. */
FUZZ_UNUSED static GPT3 *fuzz_shared_model(int channels) {
    static GPT3 m;
    static int ready;
    if (!ready) {
        fuzz_alloc_reset(0, 0);
        FUZZ_CHECK(fuzz_small_model(&m, channels) == GPT3_OK);
        ready = 1;
    }
    return &m;
}

/* The set-up of the tuning harness and its seeds: a head, LoRA adapters,
   a soft prompt, the top block training. */
FUZZ_UNUSED static void fuzz_tuned_model(GPT3 *m) {
    FUZZ_CHECK(fuzz_small_model(m, 8) == GPT3_OK);
    FUZZ_CHECK(gpt3_head_attach(m, GPT3_HEAD_CLASSES, 3, 5) == GPT3_OK);
    FUZZ_CHECK(gpt3_lora_attach(m, 2, 4.0f, 6) == GPT3_OK);
    FUZZ_CHECK(gpt3_prompt_attach(m, 2, NULL, 0, 7) == GPT3_OK);
    gpt3_freeze(m, 1);
}

/* A step of that model's head: what a load put in place is usable. */
FUZZ_UNUSED static void fuzz_head_step(GPT3 *m, int t) {
    static const int inputs[8] = {1, 2, 3, 4, 5, 6, 7, 8}, labels[2] = {0, 2};
    FUZZ_CHECK(gpt3_head_forward(m, inputs, NULL, labels, 2, 4) == GPT3_OK);
    gpt3_zero_grad(m);
    FUZZ_CHECK(gpt3_head_backward(m) == GPT3_OK);
    FUZZ_CHECK(gpt3_adamw_step(m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, t) == GPT3_OK);
}

/* Encode text, check every id, decode, and require the text back. */
FUZZ_UNUSED static void fuzz_round_trip(GPT3Tokenizer *tok, const uint8_t *text, size_t n) {
    int *ids = NULL;
    size_t n_ids = 0, n_back = 0;
    unsigned char *back = NULL;
    int rc = gpt3_encode(tok, text, n, &ids, &n_ids);
    FUZZ_CHECK(rc == GPT3_OK);
    FUZZ_CHECK(n_ids <= n);
    for (size_t i = 0; i < n_ids; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < tok->vocab_size);
    rc = gpt3_decode(tok, ids, n_ids, &back, &n_back);
    FUZZ_CHECK(rc == GPT3_OK);
    FUZZ_CHECK(n_back == n && (n == 0 || memcmp(back, text, n) == 0) && back[n] == 0);
    free(ids);
    free(back);
}

/* A tokenizer's invariants: every merge joins its two tokens' bytes. */
FUZZ_UNUSED static void fuzz_check_tokenizer(const GPT3Tokenizer *tok) {
    FUZZ_CHECK(tok->vocab_size >= 256);
    for (int r = 0; r < tok->num_merges; r++) {
        size_t la, lb, lm;
        const unsigned char *a = gpt3_token_bytes(tok, tok->merges[r][0], &la);
        const unsigned char *b = gpt3_token_bytes(tok, tok->merges[r][1], &lb);
        const unsigned char *m = gpt3_token_bytes(tok, tok->merges[r][2], &lm);
        FUZZ_CHECK(a && b && m && lm == la + lb);
        FUZZ_CHECK(memcmp(m, a, la) == 0 && memcmp(m + la, b, lb) == 0);
    }
    if (tok->eot >= 0) FUZZ_CHECK(tok->eot < tok->vocab_size);
}

/* One forward (with targets) and backward on (B, T) tokens from the input. */
FUZZ_UNUSED static void fuzz_train_step(GPT3 *m, FuzzInput *in, int B, int T) {
    int V = m->config.vocab_size, n = B * T;
    int *inputs = (int *)malloc((size_t)n * sizeof(int));
    int *targets = (int *)malloc((size_t)n * sizeof(int));
    FUZZ_CHECK(inputs && targets);
    for (int i = 0; i < n; i++) {
        unsigned r = fuzz_u16(in);
        inputs[i] = (int)(r % (unsigned)V);
        targets[i] = (r >> 15) ? -1 : (int)((r >> 4) % (unsigned)V); /* some ignored */
    }
    FUZZ_CHECK(gpt3_forward(m, inputs, targets, B, T) == GPT3_OK);
    gpt3_zero_grad(m);
    FUZZ_CHECK(gpt3_backward(m) == GPT3_OK);
    free(inputs);
    free(targets);
}

/* ======================================================================== */
#if FUZZ_ID == FUZZ_ID_load

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("ckpt", data, size);
    GPT3 m;
    int rc = gpt3_load(&m, path);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(gpt3_check_config(&m.config) == GPT3_OK);
        FUZZ_CHECK(m.num_parameters == gpt3_num_parameters(&m.config));
        FUZZ_CHECK(256 * 4 + m.num_parameters * 4 <= size);
        int T = m.config.max_seq_len < 4 ? m.config.max_seq_len : 4;
        size_t bytes = gpt3_training_bytes(&m.config, 1, T);
        if (m.num_parameters < 200000 && bytes && bytes < ((size_t)32 << 20)) {
            FuzzInput in = {data + 1024, size - 1024};
            fuzz_train_step(&m, &in, 1, T);
        }
    } else {
        FUZZ_CHECK(m.params == NULL && m.grads == NULL);
    }
    gpt3_free(&m);
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_state

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GPT3 *m = fuzz_shared_model(4);
    const char *path = fuzz_input_file("state", data, size);
    GPT3TrainState st = {-7, 1, 2, 3};
    int rc = gpt3_load_state(m, &st, path);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(st.step >= 0);
        FUZZ_CHECK((m->adam_m == NULL) == (m->adam_v == NULL));
        if (m->adam_m) FUZZ_CHECK(size >= 256 + 8 * m->num_parameters);
    } else {
        FUZZ_CHECK(st.step == -7); /* a failed load leaves *st alone */
    }
    /* back to a model without moments, so each input starts the same */
    free(m->adam_m);
    free(m->adam_v);
    m->adam_m = m->adam_v = NULL;
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_head

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    GPT3 *m = fuzz_shared_model(8);
    const char *path = fuzz_input_file("head", data, size);
    int rc = gpt3_head_load(m, path);
    if (rc == GPT3_OK) {
        GPT3Head *h = m->head;
        FUZZ_CHECK(h != NULL);
        FUZZ_CHECK(64 + (size_t)h->num_classes * (m->config.channels + 1) * 4 <= size);
        if (h->num_classes <= 4096) {
            /* a forward with labels and lengths, then backward */
            enum { B = 2, T = 5 };
            int inputs[B * T], labels[B * T], lengths[B];
            int tags = h->kind == GPT3_HEAD_TAGS, top = h->kind == GPT3_HEAD_BINARY ? 2 : h->num_classes;
            for (int i = 0; i < B * T; i++) {
                inputs[i] = (int)(data[i % size] % 16);
                labels[i] = (int)((data[(7 * i + 3) % size]) % (unsigned)top);
            }
            for (int b = 0; b < B; b++) lengths[b] = 1 + (int)(data[(b + 11) % size] % T);
            if (tags) labels[3] = -1;
            rc = gpt3_head_forward(m, inputs, lengths, labels, B, T);
            FUZZ_CHECK(rc == GPT3_OK);
            gpt3_zero_grad(m);
            FUZZ_CHECK(gpt3_head_backward(m) == GPT3_OK);
        }
    } else {
        FUZZ_CHECK(m->head == NULL);
    }
    gpt3__free_head(m); /* no public call detaches a head; this file holds the implementation */
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_tuning

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static GPT3 m;
    static float *base; /* the model's parameters as made */
    if (!base) {
        fuzz_alloc_reset(0, 0);
        fuzz_tuned_model(&m);
        base = (float *)malloc(m.num_parameters * sizeof(float));
        FUZZ_CHECK(base != NULL);
        memcpy(base, m.params, m.num_parameters * sizeof(float));
    }
    const char *path = fuzz_input_file("tuning", data, size);
    GPT3Snapshot best = {{0}, {0}};
    uint64_t counters[4];
    int rc = gpt3_load_tuning(&m, &best, counters, 4, path);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(size >= 128 + 32 + 12 * (m.lora->num_parameters + 27 + 16));
        if (best.copies[2]) FUZZ_CHECK(gpt3_snapshot_restore(&m, &best) == GPT3_OK);
        fuzz_head_step(&m, 1);
        gpt3_free(&m); /* the next input starts from the model as made */
        fuzz_tuned_model(&m);
    } else {
        FUZZ_CHECK(memcmp(m.params, base, m.num_parameters * sizeof(float)) == 0 && !m.adam_m);
        for (int k = 0; k < 4; k++) FUZZ_CHECK(best.copies[k] == NULL);
    }
    gpt3_snapshot_free(&best);
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_tokens

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file("tok", data, size);
    GPT3Tokens t;
    int rc = gpt3_tokens_load(&t, path);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(size == 256 + 2 * t.count);
        FUZZ_CHECK(t.vocab_size >= 1 && t.vocab_size <= 65536);
        for (size_t i = 0; i < t.count; i++) FUZZ_CHECK(t.tokens[i] < t.vocab_size);
        unsigned shape = size > 8 ? data[8] : 0;
        int B = 1 + (int)(shape % 3), T = 1 + (int)((shape >> 2) % 8);
        for (int shuffle = 0; shuffle < 2; shuffle++) {
            GPT3DataLoader dl;
            rc = gpt3_loader_init(&dl, &t, B, T, shuffle, 99);
            if (t.count < (size_t)T + 1) { FUZZ_CHECK(rc == GPT3_ERR_DATA_SHORT); continue; }
            FUZZ_CHECK(rc == GPT3_OK);
            for (int step = 0; step < 4; step++) {
                gpt3_loader_next(&dl);
                for (int i = 0; i < B * T; i++)
                    FUZZ_CHECK(dl.inputs[i] >= 0 && dl.inputs[i] < t.vocab_size &&
                               dl.targets[i] >= 0 && dl.targets[i] < t.vocab_size);
            }
            gpt3_loader_free(&dl);
        }
    } else {
        FUZZ_CHECK(t.tokens == NULL && t.count == 0);
    }
    gpt3_tokens_free(&t);
    unlink(path);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_tokenizer

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = fuzz_path("json"), *bpe = fuzz_path("bpe");
    const uint8_t *split = (const uint8_t *)memchr(data, 0xFF, size);
    size_t n_json = split ? (size_t)(split - data) : size;
    GPT3Tokenizer tok;
    fuzz_alloc_reset(size, 64);
    fuzz_write(json, data, n_json);
    fuzz_write(bpe, split ? split + 1 : data + size, split ? size - n_json - 1 : 0);
    int rc = gpt3_tokenizer_load(&tok, json, bpe);
    if (rc == GPT3_OK) {
        fuzz_check_tokenizer(&tok);
        static const char sample[] = "Hello, world! It's 2024: naïve café, 東京 \xF0\x9F\x98\x80 \xFF\xC0";
        fuzz_round_trip(&tok, (const uint8_t *)sample, sizeof(sample) - 1);
        fuzz_round_trip(&tok, data, size < 4096 ? size : 4096);
    } else {
        FUZZ_CHECK(tok.bytes == NULL && tok.offsets == NULL && tok.cache == NULL);
    }
    gpt3_tokenizer_free(&tok);
    unlink(json);
    unlink(bpe);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_encode

#ifndef FUZZ_GPT2_DIR
#define FUZZ_GPT2_DIR "fixtures/gpt2"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static GPT3Tokenizer bytes, gpt2;
    static int ready;
    if (!ready) {
        const char *dir = getenv("FUZZ_GPT2_DIR") ? getenv("FUZZ_GPT2_DIR") : FUZZ_GPT2_DIR;
        char json[1024], bpe[1024];
        snprintf(json, sizeof(json), "%s/encoder.json", dir);
        snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", dir);
        fuzz_alloc_reset(0, 0);
        FUZZ_CHECK(gpt3_tokenizer_bytes(&bytes) == GPT3_OK);
        if (gpt3_tokenizer_load(&gpt2, json, bpe) != GPT3_OK) {
            fprintf(stderr, "cannot load GPT-2's tokenizer from %s (set FUZZ_GPT2_DIR)\n", dir);
            abort();
        }
        FUZZ_CHECK(gpt2.vocab_size == 50257 && gpt2.eot == 50256);
        ready = 1;
    }
    fuzz_alloc_reset(size, 64);
    /* the text itself */
    fuzz_round_trip(&bytes, data, size);
    fuzz_round_trip(&gpt2, data, size);
    /* the input as ids (native-endian int32), some valid, most not */
    size_t n = size / sizeof(int);
    int *ids = (int *)malloc(n ? n * sizeof(int) : 1);
    FUZZ_CHECK(ids != NULL);
    if (n) memcpy(ids, data, n * sizeof(int));
    GPT3Tokenizer *toks[2] = {&bytes, &gpt2};
    for (int k = 0; k < 2; k++) {
        unsigned char *text = NULL;
        size_t n_text = 0, len;
        int valid = 1;
        for (size_t i = 0; i < n; i++) valid = valid && ids[i] >= 0 && ids[i] < toks[k]->vocab_size;
        int rc = gpt3_decode(toks[k], ids, n, &text, &n_text);
        FUZZ_CHECK(valid ? rc == GPT3_OK : rc == GPT3_ERR_TOKEN);
        if (rc == GPT3_OK) FUZZ_CHECK(text[n_text] == 0);
        free(text);
        for (size_t i = 0; i < n; i++) {
            const unsigned char *b = gpt3_token_bytes(toks[k], ids[i], &len);
            FUZZ_CHECK((b != NULL) == (ids[i] >= 0 && ids[i] < toks[k]->vocab_size));
        }
    }
    free(ids);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_train

/* Input: 2 bytes for V (257 + x % 64), 1 byte of flags (bit 0: save the
   tokenizer and load it back), then the text (at most 2048 bytes). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzInput in = {data, size};
    int V = 257 + (int)(fuzz_u16(&in) % 64);
    unsigned flags = fuzz_u8(&in);
    size_t n = in.n < 2048 ? in.n : 2048;
    GPT3Tokenizer tok;
    fuzz_alloc_reset(size, 64);
    int rc = gpt3_tokenizer_train(&tok, in.p, n, V);
    FUZZ_CHECK(rc == GPT3_OK);
    FUZZ_CHECK(tok.vocab_size <= V && tok.vocab_size == 257 + tok.num_merges);
    FUZZ_CHECK(tok.eot == tok.vocab_size - 1);
    fuzz_check_tokenizer(&tok);
    fuzz_round_trip(&tok, in.p, n);
    if (flags & 1) {
        const char *json = fuzz_path("json"), *bpe = fuzz_path("bpe");
        GPT3Tokenizer back;
        FUZZ_CHECK(gpt3_tokenizer_save(&tok, json, bpe) == GPT3_OK);
        rc = gpt3_tokenizer_load(&back, json, bpe);
        FUZZ_CHECK(rc == GPT3_OK);
        FUZZ_CHECK(back.id == tok.id && back.vocab_size == tok.vocab_size &&
                   back.num_merges == tok.num_merges && back.eot == tok.eot);
        fuzz_round_trip(&back, in.p, n);
        gpt3_tokenizer_free(&back);
        unlink(json);
        unlink(bpe);
    }
    gpt3_tokenizer_free(&tok);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_report

/* Input: the number of tag names (1..32), each name as a length byte (0..15)
   and its bytes, a byte for K (1..16) and for the format buffer's size, then
   (gold, pred) byte pairs. A label byte b is b % (N + 2) - 1 in [-1, N], so
   N (out of range) and -1 (no label / sentence break) both occur. */
#define FUZZ_MAX_TAGS 32
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzInput in = {data, size};
    char names[FUZZ_MAX_TAGS][16];
    const char *tag_names[FUZZ_MAX_TAGS];
    int n_tags = 1 + (int)(fuzz_u8(&in) % FUZZ_MAX_TAGS);
    for (int t = 0; t < n_tags; t++) {
        unsigned len = fuzz_u8(&in) % 16;
        for (unsigned i = 0; i < len; i++) names[t][i] = (char)fuzz_u8(&in);
        names[t][len] = 0;
        tag_names[t] = names[t];
    }
    int K = 1 + (int)(fuzz_u8(&in) % 16);
    size_t buf_size = fuzz_u8(&in) * 8;
    size_t n = in.n / 2;
    int *gold = (int *)malloc((n + 1) * sizeof(int)), *pred = (int *)malloc((n + 1) * sizeof(int));
    int *gold_k = (int *)malloc((n + 1) * sizeof(int)), *pred_k = (int *)malloc((n + 1) * sizeof(int));
    FUZZ_CHECK(gold && pred && gold_k && pred_k);
    int bad_tags = 0, bad_classes = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned g = fuzz_u8(&in), p = fuzz_u8(&in);
        gold[i] = (int)(g % (unsigned)(n_tags + 2)) - 1;
        pred[i] = (int)(p % (unsigned)(n_tags + 2)) - 1;
        bad_tags |= gold[i] >= n_tags || pred[i] >= n_tags;
        gold_k[i] = (int)(g % (unsigned)(K + 2)) - 1;
        pred_k[i] = (int)(p % (unsigned)(K + 1));
        bad_classes |= gold_k[i] >= 0 && (gold_k[i] >= K || pred_k[i] >= K);
    }
    static char big[1 << 16];
    char *small = (char *)malloc(buf_size ? buf_size : 1);
    FUZZ_CHECK(small != NULL);
    GPT3Report r;
    fuzz_alloc_reset(size, 64);

    int rc = gpt3_report_entities(&r, gold, pred, n, tag_names, n_tags);
    FUZZ_CHECK(bad_tags ? rc == GPT3_ERR_TARGET : rc == GPT3_OK);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(r.num_classes >= 0 && r.micro.precision >= 0 && r.micro.precision <= 1 &&
                   r.micro.recall >= 0 && r.micro.recall <= 1);
        size_t need = gpt3_report_format(&r, NULL, big, sizeof(big));
        FUZZ_CHECK(need < sizeof(big) && strlen(big) == need);
        if (buf_size) {
            gpt3_report_format(&r, NULL, small, buf_size);
            FUZZ_CHECK(strlen(small) < buf_size);
        }
        gpt3_report_free(&r);
    }

    rc = gpt3_report_classes(&r, gold_k, pred_k, n, K);
    FUZZ_CHECK(bad_classes ? rc == GPT3_ERR_TARGET : rc == GPT3_OK);
    if (rc == GPT3_OK) {
        FUZZ_CHECK(r.accuracy >= 0 && r.accuracy <= 1);
        const char *const *labels = n_tags >= K ? tag_names : NULL;
        size_t need = gpt3_report_format(&r, labels, big, sizeof(big));
        FUZZ_CHECK(need < sizeof(big) && strlen(big) == need);
        if (buf_size) {
            gpt3_report_format(&r, labels, small, buf_size);
            FUZZ_CHECK(strlen(small) < buf_size);
        }
        gpt3_report_free(&r);
    }
    free(small);
    free(gold);
    free(pred);
    free(gold_k);
    free(pred_k);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_config

/* Input: six selector bytes, one per config value (below 0xF0: the value
   itself; from 0xF0: an edge value of the table), B, T (2 bytes, 1..300),
   flags, then tokens. */
static const int fuzz_edges[16] = {
    -1, INT_MIN, INT_MAX, INT_MAX - 1, 1 << 24, (1 << 24) + 1, 1 << 28, 65536,
    32768, 32769, 256, 300, 1000, 2048, 1 << 30, -2};

static int fuzz_config_value(FuzzInput *in) {
    unsigned s = fuzz_u8(in);
    return s < 0xF0 ? (int)s : fuzz_edges[s - 0xF0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzInput in = {data, size};
    GPT3Config c;
    c.max_seq_len = fuzz_config_value(&in);
    c.vocab_size = fuzz_config_value(&in);
    c.num_layers = fuzz_config_value(&in);
    c.num_heads = fuzz_config_value(&in);
    c.channels = fuzz_config_value(&in);
    c.local_window = fuzz_config_value(&in);
    int B = 1 + (int)(fuzz_u8(&in) % 2);
    int T = 1 + (int)(fuzz_u16(&in) % 300);
    unsigned flags = fuzz_u8(&in);
    fuzz_alloc_reset(size, 256);
    if (gpt3_check_config(&c) != GPT3_OK) {
        FUZZ_CHECK(gpt3_num_parameters(&c) == 0);
        return 0;
    }
    if (T > c.max_seq_len) T = c.max_seq_len;
    size_t P = gpt3_num_parameters(&c);
    if (P == 0 || P >= 200000) return 0;
    size_t bytes = gpt3_training_bytes(&c, B, T); /* O(L): after the size guard */
    if (bytes == 0 || bytes > ((size_t)32 << 20)) return 0;
    GPT3 m;
    FUZZ_CHECK(gpt3_init(&m, &c, 7) == GPT3_OK);
    if (flags & 1) gpt3_set_training(&m, 1, 0.1f, 5);
    fuzz_train_step(&m, &in, B, T);
    FUZZ_CHECK(m.mean_loss >= 0.0f);
    FUZZ_CHECK(gpt3_adamw_step(&m, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1) == GPT3_OK);
    if (c.local_window >= T) {
        /* a window of T or more is dense attention: logits and gradients
           must be those of the same model with local_window 0 (the window
           changes no parameter) */
        int V = c.vocab_size, *tokens = (int *)malloc((size_t)T * 2 * sizeof(int));
        float *logits = (float *)malloc((size_t)T * V * sizeof(float));
        float *grads = (float *)malloc(P * sizeof(float));
        FUZZ_CHECK(tokens && logits && grads);
        gpt3_set_training(&m, 0, 0.0f, 0);
        for (int t = 0; t < 2 * T; t++) tokens[t] = (int)(fuzz_u8(&in) % (unsigned)V);
        for (int pass = 0; pass < 2; pass++) {
            m.config.local_window = pass ? 0 : c.local_window;
            FUZZ_CHECK(gpt3_forward(&m, tokens, tokens + T, 1, T) == GPT3_OK);
            gpt3_zero_grad(&m);
            FUZZ_CHECK(gpt3_backward(&m) == GPT3_OK);
            if (pass == 0) {
                memcpy(logits, m.logits, (size_t)T * V * sizeof(float));
                memcpy(grads, m.grads, P * sizeof(float));
                continue;
            }
            for (size_t k = 0; k < (size_t)T * V; k++) FUZZ_CHECK(logits[k] == m.logits[k]);
            for (size_t k = 0; k < P; k++) {
                float a = grads[k], b = m.grads[k], tol = 1e-6f + 1e-4f * (b < 0 ? -b : b);
                if (!(a - b <= tol && b - a <= tol)) {
                    fprintf(stderr, "==FUZZ== W %d T %d: gradient %zu is %g, dense %g\n",
                            c.local_window, T, k, a, b);
                    FUZZ_CHECK(!"gradients with W >= T differ from dense attention's");
                }
            }
        }
        m.config.local_window = c.local_window;
        free(tokens);
        free(logits);
        free(grads);
    }
    if (flags & 2) {
        /* the KV cache must give the forward's logits, position by position
           (with LoRA adapters that are not merged, when flags has 4) */
        int n = T < 12 ? T : 12, V = c.vocab_size, tokens[12];
        gpt3_set_training(&m, 0, 0.0f, 0);
        if (flags & 4) {
            int rank = 1 + (int)(fuzz_u8(&in) % (unsigned)(c.channels < 4 ? c.channels : 4));
            FUZZ_CHECK(gpt3_lora_attach(&m, rank, 2.0f, 9) == GPT3_OK);
            for (size_t k = 0; k < m.lora->num_parameters; k++) /* B != 0: the adapters count */
                m.lora->params[k] += 0.1f * (float)((k * 2654435761u) % 1000) / 1000.0f - 0.05f;
        }
        for (int t = 0; t < n; t++) tokens[t] = (int)(fuzz_u8(&in) % (unsigned)V);
        FUZZ_CHECK(gpt3_forward(&m, tokens, NULL, 1, n) == GPT3_OK);
        GPT3KVCache kv;
        FUZZ_CHECK(gpt3_kv_init(&kv, &m) == GPT3_OK);
        for (int t = 0; t < n; t++) {
            FUZZ_CHECK(gpt3_kv_forward(&m, &kv, tokens[t]) == GPT3_OK);
            for (int v = 0; v < V; v++) {
                float a = kv.logits[v], b = m.logits[(size_t)t * V + v];
                float tol = 1e-4f + 1e-3f * (a < 0 ? -a : a);
                FUZZ_CHECK(a - b <= tol && b - a <= tol);
            }
        }
        gpt3_kv_free(&kv);
    }
    gpt3_free(&m);
    return 0;
}

/* ======================================================================== */
#elif FUZZ_ID == FUZZ_ID_seeds

/* Writes OUTDIR/<harness>/<name> seed files with the library itself. */
static const char *seed_dir;

static const char *seed_path(const char *harness, const char *name) {
    static char path[1024];
    char cmd[1200];
    snprintf(path, sizeof(path), "%s/%s", seed_dir, harness);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    if (system(cmd) != 0) abort();
    snprintf(path, sizeof(path), "%s/%s/%s", seed_dir, harness, name);
    return path;
}

static unsigned char *seed_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    *n = 0;
    if (!f) return NULL;
    for (;;) {
        unsigned char *q = (unsigned char *)realloc(p, *n + 65536);
        if (!q) abort();
        p = q;
        size_t got = fread(p + *n, 1, 65536, f);
        *n += got;
        if (got < 65536) break;
    }
    fclose(f);
    return p;
}

static void seed_model_files(void) {
    GPT3 m;
    GPT3TrainState st = {3, 10, 11, 0x42595445};
    /* a checkpoint */
    FUZZ_CHECK(fuzz_small_model(&m, 8) == GPT3_OK);
    FUZZ_CHECK(gpt3_save(&m, seed_path("load", "small.ckpt")) == GPT3_OK);
    gpt3_free(&m);
    /* states for the state harness's model: without and with moments */
    FUZZ_CHECK(fuzz_small_model(&m, 4) == GPT3_OK);
    FUZZ_CHECK(gpt3_save_state(&m, &st, seed_path("state", "no_moments")) == GPT3_OK);
    m.adam_m = (float *)calloc(m.num_parameters, sizeof(float));
    m.adam_v = (float *)calloc(m.num_parameters, sizeof(float));
    for (size_t i = 0; i < m.num_parameters; i++) m.adam_m[i] = 1e-3f * (float)i;
    FUZZ_CHECK(gpt3_save_state(&m, &st, seed_path("state", "moments")) == GPT3_OK);
    gpt3_free(&m);
    /* heads of each kind for the head harness's model */
    static const int kinds[3] = {GPT3_HEAD_BINARY, GPT3_HEAD_CLASSES, GPT3_HEAD_TAGS};
    static const int classes[3] = {1, 3, 5};
    static const char *names[3] = {"binary", "classes", "tags"};
    for (int k = 0; k < 3; k++) {
        FUZZ_CHECK(fuzz_small_model(&m, 8) == GPT3_OK);
        FUZZ_CHECK(gpt3_head_attach(&m, kinds[k], classes[k], 5) == GPT3_OK);
        FUZZ_CHECK(gpt3_head_save(&m, seed_path("head", names[k])) == GPT3_OK);
        gpt3_free(&m);
    }
    /* resume points for the tuning harness's model: before a step, and
       after two with a snapshot */
    uint64_t counters[4] = {2, 1, 0, 0x3ff0000000000000ull};
    GPT3Snapshot best = {{0}, {0}};
    fuzz_tuned_model(&m);
    FUZZ_CHECK(gpt3_save_tuning(&m, NULL, counters, 4, seed_path("tuning", "start")) == GPT3_OK);
    fuzz_head_step(&m, 1);
    FUZZ_CHECK(gpt3_snapshot_take(&m, &best) == GPT3_OK);
    fuzz_head_step(&m, 2);
    FUZZ_CHECK(gpt3_save_tuning(&m, &best, counters, 4, seed_path("tuning", "two_steps")) == GPT3_OK);
    gpt3_snapshot_free(&best);
    gpt3_free(&m);
}

static void seed_token_files(void) {
    uint16_t tokens[100];
    for (int i = 0; i < 100; i++) tokens[i] = (uint16_t)(i * 7 % 50);
    FUZZ_CHECK(gpt3_tokens_save(seed_path("tokens", "empty"), tokens, 0, 256, 1) == GPT3_OK);
    FUZZ_CHECK(gpt3_tokens_save(seed_path("tokens", "ten"), tokens, 10, 50, 2) == GPT3_OK);
    FUZZ_CHECK(gpt3_tokens_save(seed_path("tokens", "hundred"), tokens, 100, 65536, 3) == GPT3_OK);
}

/* A trained tokenizer as encoder.json, 0xFF, vocab.bpe. */
static void seed_tokenizer(const char *text, size_t n, int V, const char *name) {
    GPT3Tokenizer tok;
    char json[1024], bpe[1024];
    snprintf(json, sizeof(json), "%s/tmp.json", seed_dir);
    snprintf(bpe, sizeof(bpe), "%s/tmp.bpe", seed_dir);
    FUZZ_CHECK(gpt3_tokenizer_train(&tok, text, n, V) == GPT3_OK);
    FUZZ_CHECK(gpt3_tokenizer_save(&tok, json, bpe) == GPT3_OK);
    gpt3_tokenizer_free(&tok);
    size_t nj, nb;
    unsigned char *j = seed_read(json, &nj), *b = seed_read(bpe, &nb);
    FUZZ_CHECK(j && b);
    FILE *f = fopen(seed_path("tokenizer", name), "wb");
    FUZZ_CHECK(f != NULL);
    fwrite(j, 1, nj, f);
    fputc(0xFF, f);
    fwrite(b, 1, nb, f);
    fclose(f);
    free(j);
    free(b);
    remove(json);
    remove(bpe);
}

/* The texts of fixtures/tokenizer/cases.bin as encode and train seeds. */
static void seed_texts(const char *cases_bin) {
    size_t n;
    unsigned char *p = seed_read(cases_bin, &n);
    if (!p || n < 16) { fprintf(stderr, "no %s: no text seeds\n", cases_bin); free(p); return; }
    uint32_t n_cases, len, ids;
    memcpy(&n_cases, p + 8, 4);
    size_t at = 16;
    for (uint32_t k = 0; k < n_cases && at + 4 <= n; k++) {
        char name[32];
        memcpy(&len, p + at, 4);
        at += 4;
        if (at + len + 4 > n) break;
        snprintf(name, sizeof(name), "case%03u", (unsigned)k);
        if (len <= 8192) fuzz_write(seed_path("encode", name), p + at, len);
        if (k % 4 == 0) { /* train: V bytes, flags, then at most 2 KB of the text */
            unsigned char head[3] = {(unsigned char)(k * 13), 0, (unsigned char)(k % 8 == 0)};
            size_t m = len < 2048 ? len : 2048;
            unsigned char *s = (unsigned char *)malloc(m + 3);
            memcpy(s, head, 3);
            memcpy(s + 3, p + at, m);
            fuzz_write(seed_path("train", name), s, m + 3);
            if (k % 16 == 0 && m > 64) seed_tokenizer((const char *)p + at, m, 257 + (int)(k % 60), name);
            free(s);
        }
        at += len;
        memcpy(&ids, p + at, 4);
        at += 4 + 4 * (size_t)ids;
    }
    free(p);
}

static void seed_small_inputs(void) {
    /* report: 4 tags O, B-PER, I-PER, B-LOC; K 3; buffer 64 * 8; labels */
    static const unsigned char report[] = {
        3, 1, 'O', 5, 'B', '-', 'P', 'E', 'R', 5, 'I', '-', 'P', 'E', 'R',
        5, 'B', '-', 'L', 'O', 'C', 2, 64,
        1, 1, 2, 2, 3, 3, 1, 2, 4, 4, 0, 0, 2, 3, 3, 3, 1, 1, 4, 5};
    fuzz_write(seed_path("report", "bio"), report, sizeof(report));
    /* config: tiny preset shapes; T = 8; some with banded layers and huge windows */
    static const unsigned char configs[][10] = {
        {16, 16, 2, 2, 8, 3, 0, 7, 0, 3},     /* banded W = 3 */
        {16, 16, 2, 2, 8, 0, 1, 15, 0, 2},    /* dense */
        {64, 16, 2, 1, 4, 0xF2, 0, 63, 0, 2}, /* W = INT_MAX */
        {200, 8, 3, 1, 4, 0xF3, 1, 199, 0, 3},/* W = INT_MAX - 1, T 200 */
        {32, 8, 2, 2, 4, 1, 0, 31, 0, 2},     /* W = 1 */
    };
    for (size_t k = 0; k < sizeof(configs) / sizeof(configs[0]); k++) {
        char name[32];
        unsigned char buf[10 + 64];
        memcpy(buf, configs[k], 10);
        for (int i = 0; i < 64; i++) buf[10 + i] = (unsigned char)(i * 37 + k);
        snprintf(name, sizeof(name), "config%zu", k);
        fuzz_write(seed_path("config", name), buf, sizeof(buf));
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTDIR [fixtures/tokenizer/cases.bin]\n", argv[0]);
        return 2;
    }
    seed_dir = argv[1];
    fuzz_alloc_reset(0, 0);
    seed_model_files();
    seed_token_files();
    seed_small_inputs();
    seed_texts(argc > 2 ? argv[2] : "fixtures/tokenizer/cases.bin");
    static const char pangram[] = "the quick brown fox jumps over the lazy dog, the end. "
                                  "the the the quick quick fox fox 123 123 456";
    seed_tokenizer(pangram, sizeof(pangram) - 1, 300, "pangram300");
    seed_tokenizer(pangram, sizeof(pangram) - 1, 257, "bytes257");
    return 0;
}

#endif
