/* demo.c - the command-line front end of gpt3.h.

       ./demo                  the main job: train a small GPT-3 on this project's
                               own source and documentation, and watch it write
       ./demo help             every command; ./demo COMMAND --help for its flags

   Commands: prepare, train, generate, encode, decode, bpe-train, finetune,
   predict, attention, convert, bench.
   Statistics and progress go to stderr; stdout carries only the data a
   command produces (ids, bytes, generated text). */
#define GPT3_IMPLEMENTATION
#include "gpt3.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* bench's `#pragma omp` lines are ignored without OpenMP */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic ignored "-Wunknown-pragmas"
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#define HAVE_POSIX 1
#endif

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

static double now_seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "demo: %s: %s\n", what ? what : "error", gpt3_strerror(rc));
    return 1;
}

/* Data parallelism (make mpi; mpirun -np N ./demo train ...): this
   process's rank and the number of ranks, set from MPI in main; 0 and 1
   in a build without MPI. Rank 0 alone writes files and reports. */
static int mpi_rank = 0, mpi_ranks = 1;

/* The sum (largest 0) or the largest (1) of x over the ranks: the same
   value on every rank. */
static double ranks_combine(double x, int largest) {
#ifdef GPT3_MPI
    double all = x;
    if (mpi_ranks > 1) MPI_Allreduce(&x, &all, 1, MPI_DOUBLE, largest ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
    return all;
#else
    (void)largest;
    return x;
#endif
}

static double ranks_mean(double x) { return ranks_combine(x, 0) / mpi_ranks; }
static double ranks_max(double x) { return ranks_combine(x, 1); }
static int ranks_any(int yes) { return ranks_max(yes) != 0.0; }

/* Whether every rank has the same x (a fingerprint of its run). */
static int ranks_agree(uint64_t x) {
#ifdef GPT3_MPI
    uint64_t lo = x, hi = x;
    if (mpi_ranks > 1) {
        MPI_Allreduce(&x, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&x, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    }
    return lo == hi;
#else
    (void)x;
    return 1;
#endif
}

/* Peak resident memory since the last reset, in MB: VmHWM of
   /proc/self/status, reset by writing 5 to /proc/self/clear_refs (Linux);
   below 0 elsewhere: unknown (getrusage is not used: not C99). */
static void peak_rss_reset(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static int stderr_is_terminal(void) {
#ifdef HAVE_POSIX
    return isatty(2);
#else
    return 0;
#endif
}

/* mkdir -p: the folder and those above it that do not exist yet (what
   cannot be made shows when the first file is written there). */
static void make_directory(const char *path) {
#ifdef HAVE_POSIX
    char partial[1024];
    size_t n = strlen(path);
    if (n >= sizeof(partial)) return;
    memcpy(partial, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (partial[i] != '/') continue;
        partial[i] = '\0';
        mkdir(partial, 0755);
        partial[i] = '/';
    }
    mkdir(partial, 0755);
#else
    (void)path;
#endif
}

/* The folder that holds path (a file, or the prefix of files), made. */
static void make_parent_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char parent[1024];
    if (!slash || slash == path || (size_t)(slash - path) >= sizeof(parent)) return;
    memcpy(parent, path, (size_t)(slash - path));
    parent[slash - path] = '\0';
    make_directory(parent);
}

/* Read a whole file; NULL (with a message) if it cannot be read. */
static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    size_t capacity = 0;
    int out_of_memory = 0;
    *n = 0;
    if (!f) {
        fprintf(stderr, "demo: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (*n + 65536 + 1 > capacity) {
            capacity = 2 * capacity + 65536 + 1;
            unsigned char *grown = (unsigned char *)realloc(data, capacity);
            if (!grown) { out_of_memory = 1; break; }
            data = grown;
        }
        size_t got = fread(data + *n, 1, 65536, f);
        *n += got;
        if (got == 0) break;
    }
    int bad = ferror(f) || out_of_memory, err = errno;
    fclose(f);
    if (bad) {
        fprintf(stderr, "demo: cannot read %s: %s\n", path, out_of_memory ? "out of memory" : strerror(err));
        free(data);
        return NULL;
    }
    data[*n] = 0;
    return data;
}

/* All of stdin; NULL (with a message) if it cannot be read. */
static unsigned char *read_stdin(size_t *n) {
    unsigned char *data = NULL;
    size_t capacity = 0, got;
    *n = 0;
    do {
        if (*n + 65536 + 1 > capacity) {
            capacity = 2 * capacity + 65536 + 1;
            unsigned char *grown = (unsigned char *)realloc(data, capacity);
            if (!grown) {
                fprintf(stderr, "demo: out of memory reading stdin\n");
                free(data);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + *n, 1, 65536, stdin);
        *n += got;
    } while (got > 0);
    if (ferror(stdin)) {
        fprintf(stderr, "demo: cannot read stdin: %s\n", strerror(errno));
        free(data);
        return NULL;
    }
    data[*n] = 0;
    return data;
}

/* The bytes of a UTF-8 byte order mark at the start of text (3), or 0:
   editors on Windows write one; the data readers skip it, so it does not
   become part of the first label or JSON value. */
static size_t utf8_bom(const char *text, size_t n) {
    return n >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* A text file holds no NUL byte: if text does, say where and return 0. */
static int no_nul(const char *path, const char *text, size_t n) {
    const char *nul = (const char *)memchr(text, 0, n);
    if (!nul) return 1;
    int line = 1;
    for (const char *p = text; p < nul; p++) line += *p == '\n';
    fprintf(stderr, "demo: %s:%d: a NUL byte: this is not a text file (or it is damaged)\n", path, line);
    return 0;
}

/* Hold a run's folder while the run writes in it: two runs on one folder
   would write the same temporary files and one log. The lock (flock on
   DIR/.lock) ends with the process, however it ends. Returns the lock's
   descriptor (give it to unlock_folder), or -1 after saying who holds it. */
static int lock_folder(const char *command, const char *dir) {
#ifdef HAVE_POSIX
    char path[1024], holder[32] = "";
    snprintf(path, sizeof(path), "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        fprintf(stderr, "demo %s: cannot write in %s: %s\n", command, dir, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t got = read(fd, holder, sizeof(holder) - 1);
        holder[got > 0 ? got : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        fprintf(stderr, "demo %s: %s is in use by another run%s%s%s: wait for it to end, or give another --out\n",
                command, dir, holder[0] ? " (pid " : "", holder, holder[0] ? ")" : "");
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)len) != len) { /* the pid is only a hint */ }
    return fd;
#else
    (void)command, (void)dir;
    return 0;
#endif
}

static void unlock_folder(int fd) {
#ifdef HAVE_POSIX
    if (fd >= 0) close(fd);
#else
    (void)fd;
#endif
}

static int file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* 1 if path is a regular file (Python's os.path.isfile), its size in *size. */
static int regular_file(const char *path, uint64_t *size) {
#ifdef HAVE_POSIX
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    *size = (uint64_t)st.st_size;
    return 1;
#else
    FILE *f = fopen(path, "rb");
    long n = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (f) fclose(f);
    *size = n > 0 ? (uint64_t)n : 0;
    return n >= 0;
#endif
}

/* ------------------------------------------------------------------------ */
/* Flags: each command lists its options in a table                         */

typedef enum { OPT_INT, OPT_FLOAT, OPT_STRING, OPT_SWITCH } OptionType;
typedef struct {
    const char *name;   /* without the leading "--" */
    OptionType type;
    void *value;
    const char *help;
} Option;

/* The default of an int flag that has no default value of its own ("the
   preset's", "the model's"): parse_flags never gives it, so it also says
   that the flag was not given. */
#define UNSET INT_MIN
#define UNSET_FLOAT NAN /* the same for a float flag: parse_flags refuses nan */

/* The longest path a flag may give: paths are built in buffers of 1024
   bytes with room for a file name after it. */
#define MAX_PATH 900

static void print_usage(const char *command, const char *summary, const Option *opts, int n) {
    fprintf(stderr, "usage: ./demo %s [flags]\n%s\n\nflags:\n", command, summary);
    for (int i = 0; i < n; i++) {
        char shown[64];
        const Option *o = &opts[i];
        if (o->type == OPT_INT && *(int *)o->value == UNSET) shown[0] = 0;
        else if (o->type == OPT_INT) snprintf(shown, sizeof(shown), "%d", *(int *)o->value);
        else if (o->type == OPT_FLOAT && isnan(*(float *)o->value)) shown[0] = 0;
        else if (o->type == OPT_FLOAT) snprintf(shown, sizeof(shown), "%g", *(float *)o->value);
        else if (o->type == OPT_STRING) snprintf(shown, sizeof(shown), "%s", *(const char **)o->value ? *(const char **)o->value : "");
        else shown[0] = 0;
        fprintf(stderr, "  --%-14s %s%s%s%s\n", o->name, o->help, shown[0] ? " (default " : "",
                shown, shown[0] ? ")" : "");
    }
}

/* 0: parsed; 1: an error (printed); 2: --help was asked for (printed). */
static int parse_flags(const char *command, const char *summary, int argc, char **argv,
                       Option *opts, int n) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            print_usage(command, summary, opts, n);
            return 2;
        }
        const Option *o = NULL;
        for (int k = 0; k < n && arg[0] == '-' && arg[1] == '-'; k++)
            if (strcmp(arg + 2, opts[k].name) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "demo %s: unknown flag '%s' (./demo %s --help lists the flags)\n", command, arg, command);
            return 1;
        }
        if (o->type == OPT_SWITCH) {
            *(int *)o->value = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "demo %s: --%s needs a value\n", command, o->name);
            return 1;
        }
        const char *text = argv[++i], *bad = NULL;
        char *end = NULL;
        errno = 0;
        if (o->type == OPT_INT) {
            long v = strtol(text, &end, 10);
            int range = errno == ERANGE || v < -2147483647L || v > 2147483647L;
            if (*text == 0 || *end != 0) bad = "not a valid whole number";
            else if (range) bad = "out of range";
            else *(int *)o->value = (int)v;
        } else if (o->type == OPT_FLOAT) {
            float v = strtof(text, &end);
            if (*text == 0 || *end != 0 || v != v) bad = "not a valid number";
            else if (errno == ERANGE) bad = "out of range";
            else *(float *)o->value = v;
        } else {
            *(const char **)o->value = text;
        }
        if (bad) {
            fprintf(stderr, "demo %s: --%s: '%s' is %s\n", command, o->name, text, bad);
            return 1;
        }
        if (o->type == OPT_STRING && strcmp(o->name, "prompt") != 0 && strcmp(o->name, "text") != 0 &&
            strlen(text) > MAX_PATH) { /* a text, not a path */
            fprintf(stderr, "demo %s: --%s: a path of at most %d bytes, please (got %zu)\n", command, o->name,
                    MAX_PATH, strlen(text));
            return 1;
        }
    }
    return 0;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* A value that must lie in [lo, hi]; prints why not. */
static int check_range(const char *command, const char *flag, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return 1;
    fprintf(stderr, "demo %s: --%s must be between %g and %g (got %g)\n", command, flag, lo, hi, v);
    return 0;
}

/* A value that must be above 0 and at most hi. */
static int check_positive(const char *command, const char *flag, double v, double hi) {
    if (v > 0 && v <= hi) return 1;
    fprintf(stderr, "demo %s: --%s must be above 0 and at most %g (got %g)\n", command, flag, hi, v);
    return 0;
}

/* An int flag without a default of its own: UNSET, or at least lo. */
static int check_unset_or(const char *command, const char *flag, int v, int lo) {
    if (v == UNSET || v >= lo) return 1;
    fprintf(stderr, "demo %s: --%s must be at least %d (got %d)\n", command, flag, lo, v);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tokenizers                                                               */

/* BPE from --encoder/--bpe, or the files beside a checkpoint, or bytes. */
static int open_tokenizer(GPT3Tokenizer *tok, const char *encoder, const char *bpe,
                          const char *beside) {
    char enc_path[1024], bpe_path[1024];
    if (!encoder && !bpe && beside) {
        const char *slash = strrchr(beside, '/');
        int dir = slash ? (int)(slash - beside + 1) : 0;
        snprintf(enc_path, sizeof(enc_path), "%.*sencoder.json", dir, beside);
        snprintf(bpe_path, sizeof(bpe_path), "%.*svocab.bpe", dir, beside);
        if (file_exists(enc_path) && file_exists(bpe_path)) {
            encoder = enc_path;
            bpe = bpe_path;
        } else if (file_exists(enc_path) || file_exists(bpe_path)) {
            fprintf(stderr, "demo: %s has %s beside it but not %s: copy it there, or give --encoder and --bpe\n",
                    beside, file_exists(enc_path) ? "encoder.json" : "vocab.bpe",
                    file_exists(enc_path) ? "vocab.bpe" : "encoder.json");
            return 1;
        }
    }
    if (!encoder && !bpe) return gpt3_tokenizer_bytes(tok) == GPT3_OK ? 0 : fail("the byte tokenizer", GPT3_ERR_NOMEM);
    if (!encoder || !bpe) {
        fprintf(stderr, "demo: give both --encoder (encoder.json) and --bpe (vocab.bpe), or neither for bytes\n");
        return 1;
    }
    int rc = gpt3_tokenizer_load(tok, encoder, bpe);
    if (rc == GPT3_ERR_VOCAB && tok->error_line > 0)
        fprintf(stderr, "demo: %s / %s: line %d: %s\n", encoder, bpe, tok->error_line, gpt3_strerror(rc));
    else if (rc != GPT3_OK)
        fprintf(stderr, "demo: %s / %s: %s\n", encoder, bpe, gpt3_strerror(rc));
    return rc != GPT3_OK;
}

static int cmd_encode(int argc, char **argv) {
    const char *encoder = NULL, *bpe = NULL;
    Option opts[] = {
        {"encoder", OPT_STRING, &encoder, "encoder.json of a BPE (none: bytes are tokens)"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe of that BPE"},
    };
    int rc = parse_flags("encode", "Reads bytes from stdin, writes token ids separated by spaces.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    GPT3Tokenizer tok;
    if (open_tokenizer(&tok, encoder, bpe, NULL)) return 1;
    size_t n, n_ids = 0;
    int *ids = NULL;
    unsigned char *text = read_stdin(&n);
    rc = text ? gpt3_encode(&tok, text, n, &ids, &n_ids) : GPT3_OK;
    for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
    if (text && rc == GPT3_OK) printf("\n");
    free(ids);
    free(text);
    gpt3_tokenizer_free(&tok);
    if (rc != GPT3_OK) return fail("encode", rc);
    return text ? 0 : 1;
}

static int cmd_decode(int argc, char **argv) {
    const char *encoder = NULL, *bpe = NULL;
    Option opts[] = {
        {"encoder", OPT_STRING, &encoder, "encoder.json of a BPE (none: bytes are tokens)"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe of that BPE"},
    };
    int rc = parse_flags("decode", "Reads token ids (decimal, separated by whitespace) from stdin, writes the bytes.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    GPT3Tokenizer tok;
    if (open_tokenizer(&tok, encoder, bpe, NULL)) return 1;
    size_t n;
    unsigned char *text = read_stdin(&n);
    if (!text) { gpt3_tokenizer_free(&tok); return 1; }
    int status = 0;
    long position = 0;
    /* ids are runs of digits between whitespace; anything else (a sign, a
       letter, a NUL byte) is an error, named with its place */
    for (size_t i = 0; status == 0;) {
        while (i < n && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
        if (i == n) break;
        size_t start = i;
        long long id = 0;
        while (i < n && text[i] >= '0' && text[i] <= '9' && id <= 2147483647LL) id = 10 * id + (text[i++] - '0');
        int ends = i == n || text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
        size_t len;
        const unsigned char *bytes =
            i > start && ends && id <= 2147483647LL ? gpt3_token_bytes(&tok, (int)id, &len) : NULL;
        position++;
        if (!bytes) { /* the word, with bytes that do not print as \xNN */
            fprintf(stderr, "demo decode: id #%ld '", position);
            for (size_t k = start; k < n && k - start < 24 && text[k] != ' ' && text[k] != '\n' &&
                                   text[k] != '\t' && text[k] != '\r'; k++)
                fprintf(stderr, text[k] < 32 || text[k] > 126 ? "\\x%02x" : "%c", text[k]);
            fprintf(stderr, "' is not a token id in [0, %d)\n", tok.vocab_size);
            status = 1;
            break;
        }
        fwrite(bytes, 1, len, stdout);
    }
    free(text);
    gpt3_tokenizer_free(&tok);
    return status;
}

static int cmd_bpe_train(int argc, char **argv) {
    const char *input = NULL, *out = "bpe";
    int vocab = 1024;
    Option opts[] = {
        {"input", OPT_STRING, &input, "text file to learn from (required)"},
        {"vocab-size", OPT_INT, &vocab, "tokens: 256 bytes + merges + <|endoftext|>"},
        {"out", OPT_STRING, &out, "folder for encoder.json and vocab.bpe"},
    };
    int rc = parse_flags("bpe-train", "Learns a byte-level BPE (GPT-2's kind) from a text file.", argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!input) { fprintf(stderr, "demo bpe-train: --input FILE is required\n"); return 1; }
    if (!check_range("bpe-train", "vocab-size", vocab, 257, 65536)) return 1;
    char enc[1024], voc[1024], model[1024];
    snprintf(model, sizeof(model), "%s/model.ckpt", out);
    if (file_exists(model)) { /* its tokenizer is the one beside it: it would be lost */
        fprintf(stderr, "demo bpe-train: --out %s holds a model (%s): its tokenizer is the encoder.json and vocab.bpe "
                "beside it, which these would replace; give another --out\n", out, model);
        return 1;
    }
    size_t n;
    unsigned char *text = read_file(input, &n);
    if (!text) return 1;
    if (n == 0) { fprintf(stderr, "demo bpe-train: %s is empty\n", input); free(text); return 1; }
    GPT3Tokenizer tok;
    double t0 = now_seconds();
    rc = gpt3_tokenizer_train(&tok, text, n, vocab);
    free(text);
    if (rc != GPT3_OK) return fail("bpe-train", rc);
    make_directory(out);
    snprintf(enc, sizeof(enc), "%s/encoder.json", out);
    snprintf(voc, sizeof(voc), "%s/vocab.bpe", out);
    rc = gpt3_tokenizer_save(&tok, enc, voc);
    if (rc == GPT3_OK)
        fprintf(stderr, "learned %d tokens (%d merges) from %zu bytes in %.1f s: %s, %s\n", tok.vocab_size,
                tok.num_merges, n, now_seconds() - t0, enc, voc);
    else
        fprintf(stderr, "demo bpe-train: writing %s and vocab.bpe: %s (is --out %s a folder you can write?)\n", enc,
                gpt3_strerror(rc), out);
    gpt3_tokenizer_free(&tok);
    return rc != GPT3_OK;
}

/* The tokenizer beside a trained or fine-tuned model, so that the folder
   stands on its own (generate finds it there); bytes need no files. */
static int save_tokenizer_beside(const GPT3Tokenizer *tok, const char *dir) {
    char enc[1024], bpe[1024];
    if (tok->is_bytes) return GPT3_OK;
    snprintf(enc, sizeof(enc), "%s/encoder.json", dir);
    snprintf(bpe, sizeof(bpe), "%s/vocab.bpe", dir);
    return gpt3_tokenizer_save(tok, enc, bpe);
}

/* ------------------------------------------------------------------------ */
/* prepare: text -> token files                                             */

/* PREFIX.encoder.json and PREFIX.vocab.bpe: the BPE that made PREFIX's
   token files, which prepare keeps beside them and train copies beside the
   model. */
static void data_tokenizer_paths(const char *prefix, char *enc, char *bpe, size_t size) {
    snprintf(enc, size, "%s.encoder.json", prefix);
    snprintf(bpe, size, "%s.vocab.bpe", prefix);
}

/* After prepare wrote PREFIX's token files: its BPE beside them; for
   bytes, none (an earlier prepare's BPE no longer belongs to them). */
static int keep_data_tokenizer(const GPT3Tokenizer *tok, const char *prefix) {
    char enc[1040], bpe[1040];
    data_tokenizer_paths(prefix, enc, bpe, sizeof(enc));
    if (tok->is_bytes) {
        remove(enc);
        remove(bpe);
        return 0;
    }
    int rc = gpt3_tokenizer_save(tok, enc, bpe);
    return rc == GPT3_OK ? 0 : fail(enc, rc);
}

static int prepare_tokens(GPT3Tokenizer *tok, const unsigned char *text, size_t n,
                          double val_fraction, const char *prefix) {
    int *ids;
    size_t n_ids;
    int rc = gpt3_encode(tok, text, n, &ids, &n_ids);
    if (rc != GPT3_OK) return fail("prepare", rc);
    uint16_t *tokens = (uint16_t *)malloc((n_ids + 1) * sizeof(uint16_t));
    if (!tokens) { free(ids); return fail("prepare", GPT3_ERR_NOMEM); }
    for (size_t i = 0; i < n_ids; i++) tokens[i] = (uint16_t)ids[i];
    size_t n_val = (size_t)(val_fraction * (double)n_ids), n_train = n_ids - n_val;
    /* The pair is written in full under .new names before either takes
       its place, so a prepare that fails or is stopped leaves the previous
       pair as it was (only a stop between the two renames, microseconds
       apart, would pair a new validation file with the old training one). */
    char train_path[1024], val_path[1024], train_new[1040], val_new[1040];
    snprintf(train_path, sizeof(train_path), "%s.train.tok", prefix);
    snprintf(val_path, sizeof(val_path), "%s.val.tok", prefix);
    snprintf(train_new, sizeof(train_new), "%s.new", train_path);
    snprintf(val_new, sizeof(val_new), "%s.new", val_path);
    const char *failed = train_path;
    rc = gpt3_tokens_save(train_new, tokens, n_train, tok->vocab_size, tok->id);
    if (rc == GPT3_OK) {
        failed = val_path;
        rc = gpt3_tokens_save(val_new, tokens + n_train, n_val, tok->vocab_size, tok->id);
    }
    if (rc == GPT3_OK && rename(val_new, val_path) != 0) rc = GPT3_ERR_WRITE;
    if (rc == GPT3_OK && rename(train_new, train_path) != 0) {
        failed = train_path;
        rc = GPT3_ERR_WRITE;
    }
    remove(train_new);
    remove(val_new);
    free(ids);
    free(tokens);
    if (rc != GPT3_OK) return fail(failed, rc);
    fprintf(stderr, "%zu bytes -> %zu tokens (%.2f bytes/token, V %d): %s (%zu), %s (%zu)\n", n, n_ids,
            n_ids ? (double)n / (double)n_ids : 0.0, tok->vocab_size, train_path, n_train, val_path, n_val);
    return 0;
}

static int cmd_prepare(int argc, char **argv) {
    const char *input = NULL, *out = NULL, *encoder = NULL, *bpe = NULL;
    float val = 0.1f;
    Option opts[] = {
        {"input", OPT_STRING, &input, "text file (required)"},
        {"out", OPT_STRING, &out, "prefix of the outputs PREFIX.train.tok, PREFIX.val.tok, and a BPE's PREFIX.encoder.json, PREFIX.vocab.bpe (default: the input's name)"},
        {"encoder", OPT_STRING, &encoder, "encoder.json of a BPE (none: bytes are tokens)"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe of that BPE"},
        {"val-fraction", OPT_FLOAT, &val, "the last part of the text kept for validation"},
    };
    int rc = parse_flags("prepare", "Turns a text file into token files for training and validation.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!input) { fprintf(stderr, "demo prepare: --input FILE is required\n"); return 1; }
    if (!check_range("prepare", "val-fraction", val, 0.0, 0.9)) return 1;
    GPT3Tokenizer tok;
    size_t n;
    unsigned char *text = read_file(input, &n);
    if (!text) return 1;
    if (n == 0) { fprintf(stderr, "demo prepare: %s is empty\n", input); free(text); return 1; }
    if (open_tokenizer(&tok, encoder, bpe, NULL)) { free(text); return 1; }
    if (tok.vocab_size > 65536) {
        fprintf(stderr, "demo prepare: token files hold at most 65536 different tokens\n");
        free(text);
        return 1;
    }
    make_parent_directory(out ? out : input);
    rc = prepare_tokens(&tok, text, n, val, out ? out : input);
    if (rc == 0) rc = keep_data_tokenizer(&tok, out ? out : input);
    free(text);
    gpt3_tokenizer_free(&tok);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* One optimizer step: train, finetune and bench all take it               */

/* Seconds this process spent in MPI's collectives during training steps. */
static double communication_seconds = 0.0;

/* Does this process hold AdamW's moments for a share of the parameters
   alone (ZeRO-1, train --zero 1 on several processes)? */
static int sharded(const GPT3 *m) { return m->adam_count != m->num_parameters; }

/* AdamW's settings and the gradient clipping (clip 0: the norm is measured,
   nothing clipped; below 0: not even measured). */
typedef struct { float beta1, beta2, eps, weight_decay, clip; } Optimizer;

/* The forward with targets (the LM's; a task head's if head), the
   gradients zeroed, the backward, clipping, AdamW step t (1, 2, ...) at
   learning rate lr. *loss and *norm get the batch's loss and gradient
   norm; a loss or norm that is not finite stops the step before the
   parameters change (STEP_NOT_FINITE). */
enum { STEP_NOT_FINITE = -1 };
static int optimizer_step(GPT3 *m, int head, const int *inputs, const int *lengths, const int *targets,
                          int B, int T, const Optimizer *opt, float lr, int t, float *loss, float *norm) {
    int rc = head ? gpt3_head_forward(m, inputs, lengths, targets, B, T) : gpt3_forward(m, inputs, targets, B, T);
    *norm = 0.0f;
    if (rc != GPT3_OK) return rc;
    *loss = (float)ranks_mean(head ? m->head->mean_loss : m->mean_loss); /* every rank: the batch's */
    if (!isfinite(*loss)) return STEP_NOT_FINITE;
    gpt3_zero_grad(m);
    rc = head ? gpt3_head_backward(m) : gpt3_backward(m);
#ifdef GPT3_MPI
    double t0 = now_seconds();
    if (rc == GPT3_OK && mpi_ranks > 1) rc = gpt3_mpi_average_gradients(m, MPI_COMM_WORLD);
    communication_seconds += now_seconds() - t0;
#endif
    if (rc != GPT3_OK) return rc;
    if (opt->clip >= 0.0f) *norm = gpt3_clip_grad_norm(m, opt->clip);
    if (!isfinite(*norm)) return STEP_NOT_FINITE;
    rc = gpt3_adamw_step(m, lr, opt->beta1, opt->beta2, opt->eps, opt->weight_decay, t);
#ifdef GPT3_MPI
    t0 = now_seconds();
    if (rc == GPT3_OK && sharded(m)) rc = gpt3_mpi_gather_parameters(m, MPI_COMM_WORLD); /* ZeRO-1 */
    communication_seconds += now_seconds() - t0;
#endif
    return rc;
}

/* ------------------------------------------------------------------------ */
/* train                                                                    */

typedef struct {
    const char *data, *out, *model;
    int layers, channels, heads, context, window;
    int batch, seq, steps, warmup, eval_every, eval_batches, save_every, seed, resume, stop_after, zero;
    float lr, weight_decay, beta1, beta2, eps, clip;
} TrainArgs;

static volatile sig_atomic_t interrupted = 0;
static void on_interrupt(int sig) { (void)sig; interrupted = 1; }

/* How many of the n_batches asked for hold rows that no earlier batch
   has: sequential rows of T + 1 tokens start every T tokens, so the data
   holds (count - 1) / T of them; at least one batch. */
static int distinct_batches(const GPT3Tokens *data, int B, int T, int n_batches) {
    size_t rows = data->count > 0 ? (data->count - 1) / (size_t)T : 0, batches = rows / (size_t)B;
    return batches < 1 ? 1 : batches < (size_t)n_batches ? (int)batches : n_batches;
}

/* Mean loss over n_batches sequential batches from the start of the data
   (as many as it holds: distinct_batches); on several processes each
   computes its rows of every batch (their shares are equal, so the mean
   of their means is the mean). -1 (said) if it could not be computed. */
static float evaluate(GPT3 *m, const GPT3Tokens *data, int B, int T, int n_batches) {
    GPT3DataLoader dl;
    n_batches = distinct_batches(data, B, T, n_batches);
    int first_row = 0, rows = B, rc = gpt3_loader_init(&dl, data, B, T, 0, 0);
    gpt3_batch_share(B, mpi_rank, mpi_ranks, &first_row, &rows);
    double sum = 0.0;
    for (int i = 0; i < n_batches && rc == GPT3_OK; i++) {
        gpt3_loader_next(&dl);
        rc = gpt3_forward(m, dl.inputs + (size_t)first_row * T, dl.targets + (size_t)first_row * T, rows, T);
        sum += m->mean_loss;
    }
    gpt3_loader_free(&dl);
    if (rc != GPT3_OK) fprintf(stderr, "\ndemo train: the validation loss: %s: none this time\n", gpt3_strerror(rc));
    double mean = ranks_mean(sum / n_batches); /* every process calls both, whatever happened */
    return ranks_any(rc != GPT3_OK) ? -1.0f : (float)mean;
}

/* The loss curve as a picture: train loss (a line) and validation loss
   (dots) against the step, drawn from the metrics log. */
static void write_svg(const char *tsv_path, const char *svg_path) {
    if (mpi_rank != 0) return; /* rank 0 writes the run's files */
    size_t n;
    unsigned char *text = read_file(tsv_path, &n);
    if (!text) return;
    int count = 0, capacity = 1024;
    float *rows = (float *)malloc((size_t)capacity * 3 * sizeof(float));
    float max_step = 1, lo = 1e30f, hi = -1e30f;
    for (char *line = strchr((char *)text, '\n'); rows && line && line[1]; line = strchr(line + 1, '\n')) {
        float step, train, val = -1;
        char val_text[32] = "";
        if (sscanf(line + 1, "%f\t%f\t%31[^\t]", &step, &train, val_text) < 2) continue;
        if (val_text[0] != '-' && val_text[0]) val = strtof(val_text, NULL);
        if (count == capacity) {
            float *grown = (float *)realloc(rows, (size_t)capacity * 6 * sizeof(float));
            if (!grown) break;
            rows = grown;
            capacity *= 2;
        }
        rows[3 * count] = step; rows[3 * count + 1] = train; rows[3 * count + 2] = val;
        count++;
        if (step > max_step) max_step = step;
        if (train < lo) lo = train;
        if (train > hi) hi = train;
        if (val > 0 && val < lo) lo = val;
        if (val > hi) hi = val;
    }
    free(text);
    char tmp[1100]; /* drawn beside it, then put in its place */
    snprintf(tmp, sizeof(tmp), "%s.tmp", svg_path);
    FILE *f = rows && count ? fopen(tmp, "w") : NULL;
    if (!rows) fprintf(stderr, "demo: the loss curve %s: out of memory: not drawn\n", svg_path);
    else if (count && !f) fprintf(stderr, "demo: cannot write %s: %s\n", tmp, strerror(errno));
    if (!f) { free(rows); return; }
    float W = 640, H = 400, x0 = 60, y0 = 20, pw = 560, ph = 330;
    if (hi - lo < 1e-3f) hi = lo + 1e-3f;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n", x0, y0, pw, ph);
    for (int k = 0; k <= 4; k++) {
        float v = lo + (hi - lo) * k / 4, y = y0 + ph - ph * k / 4;
        float s = max_step * k / 4, x = x0 + pw * k / 4;
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", x0 - 6, y + 4, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", x, y0 + ph + 16, s);
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x0, x0 + pw, y, y);
    }
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", x0 + pw / 2, H - 12);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < count; i++)
        fprintf(f, "%.1f,%.1f ", x0 + pw * rows[3 * i] / max_step, y0 + ph - ph * (rows[3 * i + 1] - lo) / (hi - lo));
    fprintf(f, "\"/>\n");
    for (int i = 0; i < count; i++)
        if (rows[3 * i + 2] > 0)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#d62728\"/>\n", x0 + pw * rows[3 * i] / max_step,
                    y0 + ph - ph * (rows[3 * i + 2] - lo) / (hi - lo));
    fprintf(f, "<text x=\"%.0f\" y=\"35\" fill=\"#1f77b4\">train loss</text>\n", x0 + pw - 150);
    fprintf(f, "<text x=\"%.0f\" y=\"52\" fill=\"#d62728\">validation loss</text>\n", x0 + pw - 150);
    fprintf(f, "</svg>\n");
    int ok = !ferror(f);
    ok = fclose(f) == 0 && ok && rename(tmp, svg_path) == 0;
    if (!ok) {
        fprintf(stderr, "demo: writing %s failed: %s\n", svg_path, strerror(errno));
        remove(tmp);
    }
    free(rows);
}

static int load_data(const char *prefix, GPT3Tokens *train, GPT3Tokens *val) {
    char path[1024];
    snprintf(path, sizeof(path), "%s.train.tok", prefix);
    int rc = gpt3_tokens_load(train, path);
    if (rc != GPT3_OK) {
        fprintf(stderr, "demo train: %s: %s\n", path, gpt3_strerror(rc));
        if (rc == GPT3_ERR_OPEN) fprintf(stderr, "  make it with: ./demo prepare --input TEXT --out %s\n", prefix);
        return 1;
    }
    snprintf(path, sizeof(path), "%s.val.tok", prefix);
    rc = gpt3_tokens_load(val, path);
    if (rc != GPT3_OK) {
        fprintf(stderr, "demo train: %s: %s\n", path, gpt3_strerror(rc));
        gpt3_tokens_free(train);
        return 1;
    }
    if (val->tokenizer_id != train->tokenizer_id || val->vocab_size != train->vocab_size) {
        fprintf(stderr, "demo train: %s.train.tok and .val.tok come from different tokenizers\n", prefix);
        gpt3_tokens_free(train);
        gpt3_tokens_free(val);
        return 1;
    }
    return 0;
}

/* The model to train: a preset or explicit sizes, vocabulary from the data. */
static int train_config(const TrainArgs *a, int vocab_size, GPT3Config *cfg) {
    const char *model = a->model ? a->model : "mini";
    int rc = gpt3_preset(cfg, model);
    if (rc != GPT3_OK) {
        fprintf(stderr, "demo train: no model preset '%s'; presets:", model);
        for (int i = 0; gpt3_preset_name(i); i++) fprintf(stderr, " %s", gpt3_preset_name(i));
        fprintf(stderr, "\n");
        return 1;
    }
    cfg->vocab_size = vocab_size;
    if (a->layers != UNSET) cfg->num_layers = a->layers;
    if (a->channels != UNSET) cfg->channels = a->channels;
    if (a->heads != UNSET) cfg->num_heads = a->heads;
    if (a->context != UNSET) cfg->max_seq_len = a->context;
    if (a->window != UNSET) cfg->local_window = a->window;
    const char *problem = gpt3_config_problem(cfg);
    if (problem) {
        fprintf(stderr, "demo train: L %d, C %d, NH %d, context %d, window %d, V %d: %s\n", cfg->num_layers,
                cfg->channels, cfg->num_heads, cfg->max_seq_len, cfg->local_window, cfg->vocab_size, problem);
        return 1;
    }
    return 0;
}

/* --resume continues the saved model: a size given on the command line
   must be the saved one's (the same command with --resume is fine). */
static int resume_matches(const TrainArgs *a, const GPT3Config *saved, const char *ckpt) {
    GPT3Config asked = *saved;
    if ((a->model || a->layers != UNSET || a->channels != UNSET || a->heads != UNSET ||
         a->context != UNSET || a->window != UNSET) &&
        train_config(a, saved->vocab_size, &asked))
        return 0;
    const char *names[6] = {"--layers (L)", "--channels (C)", "--heads (NH)", "--context", "--window (W)", ""};
    int ask[5] = {asked.num_layers, asked.channels, asked.num_heads, asked.max_seq_len, asked.local_window};
    int have[5] = {saved->num_layers, saved->channels, saved->num_heads, saved->max_seq_len, saved->local_window};
    for (int k = 0; k < 5; k++) {
        if (ask[k] == have[k]) continue;
        fprintf(stderr, "demo train: --resume continues %s, whose %s is %d, not %d as asked%s: drop the flag, "
                "or train a new model in another --out\n", ckpt, names[k], have[k], ask[k],
                a->model ? " (--model and its overrides)" : "");
        return 0;
    }
    return 1;
}

/* Training at (B, T) must fit in this machine's memory: say so before
   allocating, not after minutes of swapping. */
static int fits_in_memory(const char *command, const GPT3Config *cfg, int B, int T) {
    double need = (double)gpt3_training_bytes(cfg, B, T), have = 0;
#if defined(HAVE_POSIX) && defined(_SC_PHYS_PAGES)
    have = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
#endif
    if (need > 0 && (have <= 0 || need <= have)) return 1;
    if (need > 0)
        fprintf(stderr, "demo %s: L %d, C %d at B %d, T %d needs %.1f GB to train; this machine has %.1f GB", command,
                cfg->num_layers, cfg->channels, B, T, need / 1e9, have / 1e9);
    else
        fprintf(stderr, "demo %s: B %d x T %d is more than this header can index for this model", command, B, T);
    fprintf(stderr, ": use a smaller model, --batch or --seq\n");
    return 0;
}

static void progress(const TrainArgs *a, int step, float loss, float val, float lr, float norm,
                     double tokens_per_s, double eta) {
    if (mpi_rank != 0) return;
    char val_text[32] = "-";
    if (val > 0) snprintf(val_text, sizeof(val_text), "%.4f", val);
    fprintf(stderr, "%sstep %d/%d | loss %.4f | val %s | lr %.2e | norm %.2f | %.0f tok/s | ETA %.0fs%s",
            stderr_is_terminal() ? "\r" : "", step, a->steps, loss, val_text, lr, norm, tokens_per_s, eta,
            stderr_is_terminal() ? "   " : "\n");
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Where a run stands: the last step saved in full (-1: none yet). */
static void say_last_save(const char *ckpt, int saved_step) {
    if (saved_step >= 0)
        fprintf(stderr, "  %s and its .state still hold step %d: --resume continues from there\n", ckpt, saved_step);
    else
        fprintf(stderr, "  no step of this run was saved yet\n");
}

/* Save the run (checkpoint and state as one); parameters that are not
   finite are never saved. Returns 0 on success. */
static int save_run(GPT3 *m, const GPT3TrainState *st, const char *ckpt, int *saved_step) {
    if (mpi_rank != 0 && !sharded(m)) { /* rank 0 saves; if it cannot, the job ends (main) */
        *saved_step = st->step;
        return 0;
    }
    if (!all_finite(m->params, m->num_parameters)) { /* the same parameters on every rank */
        if (mpi_rank == 0) {
            fprintf(stderr, "\ndemo train: the parameters are not finite (inf or nan) after step %d: not saved; "
                    "try a lower --lr or --weight-decay\n", st->step);
            say_last_save(ckpt, *saved_step);
        }
        return 1;
    }
    /* A save that fails after its commit point leaves the new checkpoint
       in ckpt.tmp, beside the new state (gpt3_save_run). */
    char tmp[1100];
    uint64_t size;
    snprintf(tmp, sizeof(tmp), "%s.tmp", ckpt);
    int stale_tmp = regular_file(tmp, &size);
#ifdef GPT3_MPI
    int rc = sharded(m) ? gpt3_mpi_save_run(m, st, ckpt, MPI_COMM_WORLD) : gpt3_save_run(m, st, ckpt);
#else
    int rc = gpt3_save_run(m, st, ckpt);
#endif
    if (rc != GPT3_OK && mpi_rank != 0) return 1; /* rank 0 says why */
    if (rc != GPT3_OK && !stale_tmp && regular_file(tmp, &size)) {
        fprintf(stderr, "\ndemo train: saving step %d: its state is saved, but its checkpoint could not take the place "
                "of %s (%s): it is in %s, and --resume puts it there\n", st->step, ckpt, gpt3_strerror(rc), tmp);
        *saved_step = st->step;
        return 1;
    }
    if (rc != GPT3_OK) {
        fprintf(stderr, "\ndemo train: saving step %d to %s failed: %s\n", st->step, ckpt, gpt3_strerror(rc));
        say_last_save(ckpt, *saved_step);
        return 1;
    }
    *saved_step = st->step;
    return 0;
}

/* On --resume, the log keeps the rows up to the saved step: the steps run
   after it (before an interruption) are run again and logged again. */
static int trim_metrics(const char *tsv, int step) {
    if (mpi_rank != 0) return 0;
    size_t n;
    char tmp[1100];
    if (!file_exists(tsv)) return 0; /* no log yet: one is started */
    unsigned char *text = read_file(tsv, &n);
    if (!text) return 1;
    snprintf(tmp, sizeof(tmp), "%s.tmp", tsv);
    FILE *f = fopen(tmp, "wb");
    int ok = f != NULL;
    for (char *line = (char *)text; ok && line < (char *)text + n;) {
        char *eol = (char *)memchr(line, '\n', (size_t)((char *)text + n - line));
        if (!eol) break; /* a row cut off by the interruption */
        size_t len = (size_t)(eol - line + 1);
        if (line == (char *)text || atoi(line) <= step) ok = fwrite(line, 1, len, f) == len;
        line += len;
    }
    if (f) ok = (fclose(f) == 0) && ok;
    ok = ok && rename(tmp, tsv) == 0;
    if (!ok) {
        fprintf(stderr, "demo train: cannot rewrite %s: %s\n", tsv, strerror(errno));
        if (f) remove(tmp);
    }
    free(text);
    return !ok;
}

/* Where a process's memory goes and its peak (the largest of the ranks'),
   and on several processes the share of the steps' time spent in MPI. */
static void report_resources(const GPT3 *m, double step_seconds) {
    double MB = 1024.0 * 1024.0, params = (double)m->num_parameters * sizeof(float) / MB;
    double moments = m->adam_m ? 2.0 * (double)m->adam_count * sizeof(float) / MB : 0.0;
    double peak = ranks_max(peak_rss_mb()), share = ranks_mean(communication_seconds) / ranks_mean(step_seconds);
    if (mpi_rank != 0) return;
    fprintf(stderr, "memory per process: parameters %.2f MB, gradients %.2f MB, AdamW moments %.2f MB%s, "
            "activations %.2f MB", params, params, moments, sharded(m) ? " (ZeRO-1: its share)" : "",
            (double)m->acts_capacity * sizeof(float) / MB);
    if (peak > 0) fprintf(stderr, "; peak resident %.2f MB%s", peak, mpi_ranks > 1 ? " (the largest process)" : "");
    fprintf(stderr, "\n");
    if (mpi_ranks > 1)
        fprintf(stderr, "communication: %.0f%% of the steps' time on %d processes (the gradients' all-reduce%s)\n",
                100.0 * share, mpi_ranks, sharded(m) ? " and ZeRO-1's parameter broadcasts" : "");
}

static int run_training(const TrainArgs *a, GPT3 *m, GPT3Tokens *train, GPT3Tokens *val,
                        GPT3TrainState *st, const char *dir) {
    char ckpt[1024], tsv[1024], svg[1024];
    snprintf(ckpt, sizeof(ckpt), "%s/model.ckpt", dir);
    snprintf(tsv, sizeof(tsv), "%s/metrics.tsv", dir);
    snprintf(svg, sizeof(svg), "%s/loss.svg", dir);
    int B = a->batch, T = a->seq, saved_step = st->step > 0 ? st->step : -1, first_row = 0, rows = B;
    gpt3_batch_share(B, mpi_rank, mpi_ranks, &first_row, &rows); /* this rank's rows of each batch */
    GPT3DataLoader dl;
    int rc = gpt3_loader_init(&dl, train, B, T, 1, (uint64_t)a->seed);
    if (rc != GPT3_OK) return fail("the training data", rc);
    if (st->step > 0) {
        dl.position = st->data_position;
        dl.rng.state = st->data_rng;
        if (trim_metrics(tsv, st->step)) { gpt3_loader_free(&dl); return 1; }
    }
    int fresh_log = st->step == 0 || !file_exists(tsv);
    FILE *log = fopen(mpi_rank == 0 ? tsv : "/dev/null", fresh_log ? "w" : "a");
    if (!log) {
        fprintf(stderr, "demo train: cannot write %s: %s\n", tsv, strerror(errno));
        gpt3_loader_free(&dl);
        return 1;
    }
    if (fresh_log) fprintf(log, "step\ttrain_loss\tval_loss\tlr\tgrad_norm\ttokens_per_s\n");
    int val_ok = val->count > (size_t)T;
    if (!val_ok) fprintf(stderr, "note: the validation tokens (%zu) are fewer than T + 1: no validation loss\n", val->count);
    int eval_batches = distinct_batches(val, B, T, a->eval_batches);
    if (val_ok && eval_batches < a->eval_batches && mpi_rank == 0)
        fprintf(stderr, "note: the validation tokens hold %d batch%s of B %d x T %d, not --eval-batches %d: the "
                "validation loss is over %s\n", eval_batches, eval_batches > 1 ? "es" : "", B, T, a->eval_batches,
                eval_batches > 1 ? "those" : "it");
    float last_val = -1.0f, loss = 0.0f, norm = 0.0f;
    int status = 0, first = st->step, log_failed = 0;
    double step_seconds = 0.0;
    double start = now_seconds();
    /* Ctrl-C (or a SIGTERM) asks for a stop: the step ends, the run is saved */
    void (*old_int)(int) = signal(SIGINT, on_interrupt), (*old_term)(int) = signal(SIGTERM, on_interrupt);
    int pause = 0;
    while (st->step < a->steps && !pause && !(interrupted = ranks_any(interrupted))) {
        double t0 = now_seconds();
        float lr = gpt3_lr_schedule(st->step, a->lr, a->warmup, a->steps);
        Optimizer opt = {a->beta1, a->beta2, a->eps, a->weight_decay, a->clip};
        gpt3_loader_next(&dl);
        rc = optimizer_step(m, 0, dl.inputs + (size_t)first_row * T, NULL, dl.targets + (size_t)first_row * T, rows, T, &opt,
                            lr, st->step + 1, &loss, &norm);
        if (rc == STEP_NOT_FINITE) {
            fprintf(stderr, "\ndemo train: the %s is not finite at step %d: stopped before it changed the parameters; "
                    "try a lower --lr or --weight-decay, or keep --clip on\n",
                    isfinite(loss) ? "gradient norm" : "loss", st->step + 1);
            say_last_save(ckpt, saved_step);
            status = 1;
            break;
        }
        if (rc != GPT3_OK) { status = fail("training step", rc); break; }
        st->step++;
        st->data_position = dl.position;
        st->data_rng = dl.rng.state;
        double dt = now_seconds() - t0, rate = (double)B * T / dt;
        step_seconds += dt;
        int eval_now = val_ok && (st->step % a->eval_every == 0 || st->step == a->steps);
        float v = eval_now ? evaluate(m, val, B, T, a->eval_batches) : -1.0f;
        eval_now = eval_now && v >= 0.0f;
        if (eval_now) last_val = v;
        double eta = (now_seconds() - start) / (st->step - first) * (a->steps - st->step);
        fprintf(log, "%d\t%.6f\t", st->step, loss);
        fprintf(log, eval_now ? "%.6f" : "-", v);
        fprintf(log, "\t%.6e\t%.4f\t%.0f\n", lr, norm, rate);
        if ((fflush(log) != 0 || ferror(log)) && !log_failed) { /* said once; the run matters more than its log */
            fprintf(stderr, "\ndemo train: writing %s failed (%s): its rows from step %d on are missing; training "
                    "goes on\n", tsv, strerror(errno), st->step);
            log_failed = 1;
        }
        int log_every = a->steps / 25 > 1 ? a->steps / 25 : 1; /* lines, when not a terminal */
        if (stderr_is_terminal() || eval_now || st->step % log_every == 0 || st->step == a->steps)
            progress(a, st->step, loss, last_val, lr, norm, rate, eta);
        pause = a->stop_after > 0 && st->step >= a->stop_after;
        if (st->step % a->save_every == 0 || st->step == a->steps || pause) {
            if (save_run(m, st, ckpt, &saved_step)) { status = 1; break; }
            write_svg(tsv, svg);
        }
    }
    fprintf(stderr, "\n");
    if (fclose(log) != 0 && !log_failed) fprintf(stderr, "demo train: writing %s failed: %s\n", tsv, strerror(errno));
    gpt3_loader_free(&dl);
    if (pause && status == 0 && mpi_rank == 0)
        fprintf(stderr, "stopped after step %d as asked: saved %s; continue with the same command and --resume\n",
                st->step, ckpt);
    if (interrupted && status == 0) { /* the handler stays: a second Ctrl-C does not cut the save */
        if (saved_step != st->step && mpi_rank == 0)
            fprintf(stderr, "interrupted at step %d: saving %s ...\n", st->step, ckpt);
        status = saved_step == st->step || save_run(m, st, ckpt, &saved_step) == 0 ? 130 : 1;
        write_svg(tsv, svg);
        if (status == 130 && mpi_rank == 0)
            fprintf(stderr, "interrupted: step %d is saved; continue with the same command and --resume\n", st->step);
    }
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if ((status == 0 || status == 130) && st->step > first) report_resources(m, step_seconds);
    return status;
}

/* train's flags and their defaults, in one place (the main job starts from
   them too). */
static TrainArgs train_defaults(void) {
    TrainArgs a = {.data = NULL, .out = "out", .model = NULL,
                   .layers = UNSET, .channels = UNSET, .heads = UNSET, .context = UNSET, .window = UNSET,
                   .batch = 8, .seq = UNSET, .steps = 1000, .warmup = UNSET, .eval_every = 100,
                   .eval_batches = 8, .save_every = 200, .seed = 1337, .resume = 0, .stop_after = 0, .zero = 0,
                   .lr = 6e-4f, .weight_decay = 0.1f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .clip = 1.0f};
    return a;
}

/* ZeRO's stage: 0 (none) or 1; the later stages are planned, not built. */
static int check_zero(int stage) {
    if (stage == 0 || stage == 1) return 1;
    fprintf(stderr, "demo train: --zero %d: only stages 0 (off) and 1 (AdamW's moments shared out) are built; "
            "./demo plan --help shows what stages 2 and 3 would save\n", stage);
    return 0;
}

/* Every flag's value, before anything is read. */
static int check_train_args(const TrainArgs *a) {
    const char *c = "train";
    return check_range(c, "steps", a->steps, 1, 1e9) && check_range(c, "batch", a->batch, 1, 1e6) &&
           check_range(c, "eval-every", a->eval_every, 1, 1e9) && check_range(c, "save-every", a->save_every, 1, 1e9) &&
           check_range(c, "eval-batches", a->eval_batches, 1, 1e6) && check_range(c, "lr", a->lr, 0, 10) &&
           check_range(c, "beta1", a->beta1, 0, 0.999999) && check_range(c, "beta2", a->beta2, 0, 0.999999) &&
           check_positive(c, "eps", a->eps, 1) && check_range(c, "clip", a->clip, 0, 1e9) &&
           check_range(c, "weight-decay", a->weight_decay, 0, 10) && check_range(c, "stop-after", a->stop_after, 0, 1e9) &&
           check_zero(a->zero) &&
           check_unset_or(c, "layers", a->layers, 1) && check_unset_or(c, "channels", a->channels, 1) &&
           check_unset_or(c, "heads", a->heads, 1) && check_unset_or(c, "context", a->context, 1) &&
           check_unset_or(c, "window", a->window, 0) && check_unset_or(c, "seq", a->seq, 1) &&
           check_unset_or(c, "warmup", a->warmup, 0);
}

/* FNV-1a of n bytes at p, continuing from h (FNV1A_START to begin). */
#define FNV1A_START 1469598103934665603ull
static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* What every process of a data-parallel run must share, in 64 bits (FNV-1a
   over the flags, the parameters, the step and the tokens): ranks that
   differ would train different models. */
static uint64_t run_fingerprint(const TrainArgs *a, const GPT3 *m, const GPT3TrainState *st,
                                const GPT3Tokens *train) {
    int numbers[] = {a->batch, a->seq, a->steps, a->warmup, a->seed, a->eval_every, a->save_every, a->stop_after, a->zero,
                     st->step, m->config.num_layers, m->config.channels, m->config.num_heads, m->config.max_seq_len,
                     m->config.local_window, m->config.vocab_size};
    float reals[] = {a->lr, a->weight_decay, a->beta1, a->beta2, a->eps, a->clip};
    uint64_t h = fnv1a(FNV1A_START, numbers, sizeof(numbers));
    h = fnv1a(h, reals, sizeof(reals));
    h = fnv1a(h, m->params, m->num_parameters * sizeof(float));
    h = fnv1a(h, train->tokens, train->count * sizeof(uint16_t));
    return h ^ st->data_position;
}

/* The tokenizer that made DATA's tokens, beside the model in OUT, so that
   generate, finetune and predict find it: copied from beside the token
   files, where prepare keeps it. An OUT that holds another tokenizer is
   refused, as the model would be read with the wrong one; token files
   with no tokenizer beside them (a BPE's, from before prepare kept it)
   get a warning. */
static int tokenizer_for_run(const char *data, const char *out, uint32_t tokenizer_id) {
    char ckpt[1024], enc[1040], bpe[1040];
    snprintf(ckpt, sizeof(ckpt), "%s/model.ckpt", out);
    GPT3Tokenizer tok;
    if (open_tokenizer(&tok, NULL, NULL, ckpt)) return 1;
    int is_bytes = tok.is_bytes, same = tok.id == tokenizer_id;
    gpt3_tokenizer_free(&tok);
    if (same) return 0;
    if (!is_bytes) {
        fprintf(stderr, "demo train: the encoder.json and vocab.bpe in %s are another tokenizer than the one "
                "that made %s.train.tok: give another --out, or remove them\n", out, data);
        return 1;
    }
    data_tokenizer_paths(data, enc, bpe, sizeof(enc));
    if (!file_exists(enc) || !file_exists(bpe)) {
        fprintf(stderr, "note: %s.train.tok was made by a BPE that is not beside it (%s): copy its encoder.json "
                "and vocab.bpe into %s, so that generate finds them\n", data, enc, out);
        return 0;
    }
    if (open_tokenizer(&tok, enc, bpe, NULL)) return 1;
    int rc, status = 1;
    if (tok.id != tokenizer_id)
        fprintf(stderr, "demo train: %s is not the tokenizer that made %s.train.tok: prepare the data again\n",
                enc, data);
    else if ((rc = save_tokenizer_beside(&tok, out)) != GPT3_OK)
        fail(out, rc);
    else
        status = 0;
    gpt3_tokenizer_free(&tok);
    return status;
}

static int cmd_train(int argc, char **argv) {
    TrainArgs a = train_defaults();
    Option opts[] = {
        {"data", OPT_STRING, &a.data, "PREFIX of PREFIX.train.tok and PREFIX.val.tok (./demo prepare)"},
        {"out", OPT_STRING, &a.out, "folder for model.ckpt, model.ckpt.state, metrics.tsv, loss.svg (and the data's BPE)"},
        {"model", OPT_STRING, &a.model, "preset: tiny, mini, teach, small, ..., 175b (default mini)"},
        {"layers", OPT_INT, &a.layers, "override the preset's L"},
        {"channels", OPT_INT, &a.channels, "override C"},
        {"heads", OPT_INT, &a.heads, "override NH"},
        {"context", OPT_INT, &a.context, "override max_seq_len"},
        {"window", OPT_INT, &a.window, "override local_window W (0: all layers dense)"},
        {"batch", OPT_INT, &a.batch, "B"},
        {"seq", OPT_INT, &a.seq, "T (default: the model's context)"},
        {"steps", OPT_INT, &a.steps, "optimizer steps in all"},
        {"lr", OPT_FLOAT, &a.lr, "peak learning rate"},
        {"warmup", OPT_INT, &a.warmup, "linear warmup steps (default: steps / 20)"},
        {"weight-decay", OPT_FLOAT, &a.weight_decay, "AdamW decay of the weight matrices"},
        {"beta1", OPT_FLOAT, &a.beta1, "AdamW beta1"},
        {"beta2", OPT_FLOAT, &a.beta2, "AdamW beta2"},
        {"eps", OPT_FLOAT, &a.eps, "AdamW epsilon"},
        {"clip", OPT_FLOAT, &a.clip, "gradient clipping norm (0: off)"},
        {"eval-every", OPT_INT, &a.eval_every, "steps between validation losses"},
        {"eval-batches", OPT_INT, &a.eval_batches, "batches per validation loss (at most as many as the validation tokens hold)"},
        {"save-every", OPT_INT, &a.save_every, "steps between checkpoints"},
        {"seed", OPT_INT, &a.seed, "seed of the initialisation and the data order"},
        {"resume", OPT_SWITCH, &a.resume, "continue the run saved in --out"},
        {"stop-after", OPT_INT, &a.stop_after, "stop (and save) after this step, to --resume later (0: no)"},
        {"zero", OPT_INT, &a.zero, "1: ZeRO stage 1 on several processes (mpirun): each keeps AdamW's moments for 1/N"},
    };
    int rc = parse_flags("train", "Trains a GPT-3 with AdamW and GPT-3's schedule (warmup, cosine decay to 10%).",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!a.data) { fprintf(stderr, "demo train: --data PREFIX is required (make it with ./demo prepare)\n"); return 1; }
    if (!check_train_args(&a)) return 1;
    if (a.batch % mpi_ranks != 0) {
        fprintf(stderr, "demo train: --batch %d does not divide among %d processes: give a multiple of %d (each "
                "process takes an equal share of every batch)\n", a.batch, mpi_ranks, mpi_ranks);
        return 1;
    }
    if (a.warmup == UNSET) a.warmup = a.steps / 20 > 0 ? a.steps / 20 : 1;
    GPT3Tokens train, val;
    if (load_data(a.data, &train, &val)) return 1;
    GPT3Config cfg;
    GPT3 m;
    GPT3TrainState st = {0, 0, 0, train.tokenizer_id};
    char ckpt[1024];
    memset(&m, 0, sizeof(m));
    snprintf(ckpt, sizeof(ckpt), "%s/model.ckpt", a.out);
    int status = 1, lock = -1, tokenizer_ok;
    char unfinished[1100];
    snprintf(unfinished, sizeof(unfinished), "%s.tmp", ckpt);
    if (a.resume && !file_exists(ckpt) && !file_exists(unfinished)) {
        fprintf(stderr, "demo train: --resume: cannot open %s: no saved run in %s (train without --resume first)\n",
                ckpt, a.out);
        goto done_data;
    }
    char head[1100];
    snprintf(head, sizeof(head), "%s.head", ckpt);
    if (!a.resume && file_exists(head)) { /* a new run would replace the model and leave its head stale */
        fprintf(stderr, "demo train: --out %s holds a fine-tuned model (%s and its .head), which a new run would "
                "replace: give another --out\n", a.out, ckpt);
        goto done_data;
    }
    if (!a.resume && mpi_rank == 0) make_directory(a.out);
    if (mpi_rank == 0 && (lock = lock_folder("train", a.out)) < 0) goto done_data;
    if (a.resume) {
        rc = gpt3_load_run_shard(&m, &st, ckpt, a.zero ? mpi_rank : 0, a.zero ? mpi_ranks : 1);
        if (rc != GPT3_OK) {
            fprintf(stderr, "demo train: --resume: %s and model.ckpt.state: %s\n", ckpt, gpt3_strerror(rc));
            goto done_data;
        }
        if (m.config.vocab_size != train.vocab_size || st.tokenizer_id != train.tokenizer_id) {
            fprintf(stderr, "demo train: %s was trained on tokens of another tokenizer than %s.train.tok\n", ckpt, a.data);
            gpt3_free(&m);
            goto done_data;
        }
        if (!resume_matches(&a, &m.config, ckpt)) { gpt3_free(&m); goto done_data; }
        cfg = m.config;
        if (mpi_rank != 0) { /* rank 0 reports */
        } else if (st.step >= a.steps)
            fprintf(stderr, "the run in %s is at step %d already, and --steps is %d: nothing to train "
                    "(give a larger --steps to train further)\n", a.out, st.step, a.steps);
        else
            fprintf(stderr, "resuming %s at step %d of %d\n", ckpt, st.step, a.steps);
    } else if (train_config(&a, train.vocab_size, &cfg)) {
        goto done_data;
    }
    if (a.seq == UNSET) a.seq = cfg.max_seq_len;
    if (a.seq > cfg.max_seq_len) {
        fprintf(stderr, "demo train: --seq %d is longer than the model's context %d\n", a.seq, cfg.max_seq_len);
        gpt3_free(&m);
        goto done_data;
    }
    if (train.count < (size_t)a.seq + 1) {
        fprintf(stderr, "demo train: %s.train.tok has %zu tokens; T = %d needs at least %d (use a smaller --seq or more text)\n",
                a.data, train.count, a.seq, a.seq + 1);
        gpt3_free(&m);
        goto done_data;
    }
    if (!fits_in_memory("train", &cfg, a.batch, a.seq)) { gpt3_free(&m); goto done_data; }
    if (!a.resume && (rc = gpt3_init(&m, &cfg, (uint64_t)a.seed)) != GPT3_OK) { fail("init", rc); goto done_data; }
    if (a.zero && !a.resume && (rc = gpt3_adamw_shard(&m, mpi_rank, mpi_ranks)) != GPT3_OK) {
        fail("ZeRO-1", rc);
        gpt3_free(&m);
        goto done_data;
    }
    if (mpi_ranks > 1 && !ranks_agree(run_fingerprint(&a, &m, &st, &train))) {
        if (mpi_rank == 0)
            fprintf(stderr, "demo train: the processes do not agree on the model, the flags, the data or the saved "
                    "run: give each the same command and files\n");
        gpt3_free(&m);
        goto done_data;
    }
    tokenizer_ok = mpi_rank != 0 || tokenizer_for_run(a.data, a.out, train.tokenizer_id) == 0;
    if (!ranks_agree((uint64_t)tokenizer_ok) || !tokenizer_ok) { gpt3_free(&m); goto done_data; }
    if (mpi_rank == 0)
        fprintf(stderr, "model: L %d, C %d, NH %d, context %d, W %d, V %d: %zu parameters; B %d, T %d, %d steps\n",
            cfg.num_layers, cfg.channels, cfg.num_heads, cfg.max_seq_len, cfg.local_window, cfg.vocab_size,
            m.num_parameters, a.batch, a.seq, a.steps);
    status = run_training(&a, &m, &train, &val, &st, a.out);
    gpt3_free(&m);
done_data:
    unlock_folder(lock);
    gpt3_tokens_free(&train);
    gpt3_tokens_free(&val);
    return status;
}

/* ------------------------------------------------------------------------ */
/* generate                                                                 */

typedef struct {
    GPT3 *m;
    GPT3KVCache kv;
    int use_cache;
    int *context;       /* (max_seq_len) the tokens the model sees           */
    int n;              /* how many                                         */
} Generator;

/* The positions left for tokens: a soft prompt takes the first ones. */
static int context_room(const GPT3 *m) { return m->config.max_seq_len - (m->prompt ? m->prompt->length : 0); }

/* Feed one token and leave its logits in *logits. The context holds at
   most max_seq_len tokens: when it is full, the oldest half is dropped and
   the cache refilled from the newer half (positions are absolute, so the
   kept tokens must be run again at their new positions). */
static int generator_feed(Generator *g, int token, const float **logits) {
    int maxT = context_room(g->m), rc = GPT3_OK;
    if (g->n == maxT) {
        int keep = maxT / 2;
        memmove(g->context, g->context + g->n - keep, (size_t)keep * sizeof(int));
        g->n = keep;
        gpt3_kv_reset(&g->kv);
        for (int i = 0; g->use_cache && rc == GPT3_OK && i < keep; i++) rc = gpt3_kv_forward(g->m, &g->kv, g->context[i]);
    }
    g->context[g->n++] = token;
    if (rc != GPT3_OK) return rc;
    if (g->use_cache) {
        rc = gpt3_kv_forward(g->m, &g->kv, token);
        *logits = g->kv.logits;
    } else {
        rc = gpt3_forward(g->m, g->context, NULL, 1, g->n);
        *logits = g->m->logits + (size_t)(g->n - 1) * g->m->config.vocab_size;
    }
    return rc;
}

static void print_token(const GPT3Tokenizer *tok, int id) {
    size_t len;
    const unsigned char *bytes = gpt3_token_bytes(tok, id, &len);
    if (bytes) fwrite(bytes, 1, len, stdout);
    fflush(stdout);
}

/* Make n_new tokens after the prompt, streaming them to stdout if show;
   returns tokens/s. */
static double generate(GPT3 *m, GPT3Tokenizer *tok, const char *prompt, int n_new,
                       GPT3Sampler *sampler, int use_cache, int stop_at_eot, int show) {
    Generator g;
    int *ids = NULL, maxT = context_room(m);
    size_t n_ids = 0;
    memset(&g, 0, sizeof(g));
    g.m = m;
    g.use_cache = use_cache;
    g.context = (int *)malloc((size_t)maxT * sizeof(int));
    if (!g.context || gpt3_kv_init(&g.kv, m) != GPT3_OK || gpt3_encode(tok, prompt, strlen(prompt), &ids, &n_ids) != GPT3_OK) {
        fprintf(stderr, "demo: out of memory\n");
        free(g.context);
        gpt3_kv_free(&g.kv);
        return -1;
    }
    if (n_ids == 0) { /* an empty prompt starts from <|endoftext|> or a newline */
        ids[0] = tok->eot >= 0 ? tok->eot : '\n';
        n_ids = 1;
    }
    size_t skip = n_ids > (size_t)maxT ? n_ids - (size_t)maxT : 0;
    if (skip) fprintf(stderr, "[the prompt has %zu tokens; the model's context is %d: it sees the last %d]\n", n_ids, maxT, maxT);
    if (show) fwrite(prompt, 1, strlen(prompt), stdout);
    const float *logits = NULL;
    int rc = GPT3_OK;
    for (size_t i = skip; rc == GPT3_OK && i < n_ids; i++) rc = generator_feed(&g, ids[i], &logits);
    double t0 = now_seconds();
    int made = 0;
    for (; rc == GPT3_OK && made < n_new; made++) {
        int next = gpt3_sampler_sample(sampler, logits);
        if (stop_at_eot && next == tok->eot) break;
        if (show) print_token(tok, next);
        rc = generator_feed(&g, next, &logits);
    }
    double rate = made / (now_seconds() - t0 + 1e-9);
    if (rc != GPT3_OK) fprintf(stderr, "\ndemo: %s\n", gpt3_strerror(rc));
    free(ids);
    free(g.context);
    gpt3_kv_free(&g.kv);
    return rc == GPT3_OK ? rate : -1;
}

/* After a checkpoint that is not there: a fine-tuning run stopped before
   its end (its finetune.state where the checkpoint goes) is to be
   finished; otherwise fix says how to make one. */
static void say_no_checkpoint(const char *model, const char *fix) {
    const char *slash = strrchr(model, '/');
    char state[MAX_PATH + 32];
    snprintf(state, sizeof(state), "%.*sfinetune.state", slash ? (int)(slash - model + 1) : 0, model);
    if (file_exists(state))
        fprintf(stderr, "  %s is a fine-tuning run stopped before its end: finish it with the same finetune command "
                "and --resume\n", state);
    else
        fprintf(stderr, "  %s\n", fix);
}

/* A checkpoint, and its .head file's soft prompt (and head) when it has
   one, as fine-tuning saved them; 0, or 1 said. */
static int load_model_and_head(GPT3 *m, const char *model) {
    int rc = gpt3_load(m, model);
    if (rc != GPT3_OK) {
        fail(model, rc);
        if (rc == GPT3_ERR_OPEN) say_no_checkpoint(model, "train one first: ./demo (or ./demo train --help)");
        return 1;
    }
    char head_path[MAX_PATH + 8];
    snprintf(head_path, sizeof(head_path), "%s.head", model);
    if (file_exists(head_path) && (rc = gpt3_head_load(m, head_path)) != GPT3_OK) {
        gpt3_free(m);
        return fail(head_path, rc);
    }
    if (m->prompt) fprintf(stderr, "[with the soft prompt of %d vectors in %s]\n", m->prompt->length, head_path);
    return 0;
}

static int cmd_generate(int argc, char **argv) {
    const char *model = "out/model.ckpt", *prompt = "", *encoder = NULL, *bpe = NULL;
    int max_tokens = 200, top_k = 0, seed = 42, no_cache = 0, no_stop = 0;
    float temperature = 0.8f, top_p = 0.95f;
    Option opts[] = {
        {"model", OPT_STRING, &model, "checkpoint"},
        {"prompt", OPT_STRING, &prompt, "text to continue (empty: start a new text)"},
        {"max-tokens", OPT_INT, &max_tokens, "tokens to write"},
        {"temperature", OPT_FLOAT, &temperature, "sampling temperature (0: always the likeliest)"},
        {"top-k", OPT_INT, &top_k, "sample from the k likeliest tokens (0: all)"},
        {"top-p", OPT_FLOAT, &top_p, "sample from the likeliest tokens holding this much probability (1: all)"},
        {"seed", OPT_INT, &seed, "seed of the sampler"},
        {"encoder", OPT_STRING, &encoder, "encoder.json (default: the one beside the checkpoint, else bytes)"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe"},
        {"no-cache", OPT_SWITCH, &no_cache, "recompute the whole context for every token (slow; for comparison)"},
        {"no-stop", OPT_SWITCH, &no_stop, "do not stop at <|endoftext|>"},
    };
    int rc = parse_flags("generate", "Continues a prompt, streaming tokens to stdout as they are made.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!check_range("generate", "max-tokens", max_tokens, 0, 1e9) || !check_range("generate", "top-k", top_k, 0, 1e9) ||
        !check_range("generate", "top-p", top_p, 1e-6, 1) || !check_range("generate", "temperature", temperature, 0, 100))
        return 1;
    GPT3 m;
    GPT3Tokenizer tok;
    GPT3Sampler sampler;
    if (load_model_and_head(&m, model)) return 1;
    if (open_tokenizer(&tok, encoder, bpe, model)) { gpt3_free(&m); return 1; }
    if (tok.vocab_size != m.config.vocab_size) {
        fprintf(stderr, "demo generate: the tokenizer has %d tokens but %s expects %d: give the model's --encoder and --bpe\n",
                tok.vocab_size, model, m.config.vocab_size);
        gpt3_tokenizer_free(&tok);
        gpt3_free(&m);
        return 1;
    }
    rc = gpt3_sampler_init(&sampler, m.config.vocab_size, temperature, top_k, top_p, (uint64_t)seed);
    double rate = rc == GPT3_OK ? generate(&m, &tok, prompt, max_tokens, &sampler, !no_cache, !no_stop, 1) : -1;
    if (rc != GPT3_OK) fail("generate", rc);
    printf("\n");
    if (rate >= 0) fprintf(stderr, "[%.1f tokens/s%s]\n", rate, no_cache ? ", without the KV cache" : "");
    gpt3_sampler_free(&sampler);
    gpt3_tokenizer_free(&tok);
    gpt3_free(&m);
    return rate < 0;
}

/* ------------------------------------------------------------------------ */
/* bench: speed and memory, case by case (issue: CPU speed)                  */
/*                                                                          */
/* Every figure is the median of --runs timed runs after warm-up. The       */
/* machine's own limits are measured in the same run: the FMA peak (a loop  */
/* of independent multiply-adds, 1 thread and all) and the read bandwidth   */
/* (a sum over 512 MB). Human-readable lines go to stderr; --tsv prints     */
/* "case<TAB>metric<TAB>value" lines on stdout for dev/bench_compare.py,    */
/* which runs the same cases in PyTorch side by side.                       */

typedef struct {
    int runs, tsv, threads;
    double peak_1, peak_all, bandwidth; /* GFLOP/s, GFLOP/s, GB/s */
} Bench;

static void bench_put(const Bench *b, const char *name, const char *metric, double value) {
    if (b->tsv) printf("%s\t%s\t%.6g\n", name, metric, value);
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof(double), by_value);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* 12 x 16 independent multiply-adds per iteration, enough to fill two FMA
   pipes of 4-cycle latency with 16-float vectors; GFLOP/s of one thread
   times the threads running it. */
/* The FMA peak: CHAINS independent chains of multiply-adds, each one
   vector register of the instruction set the header's micro-kernel uses
   (GPT3__VEC floats): enough chains to cover the FMA latency on every
   pipe (4 cycles x 2 pipes on x86, up to 4 x 4 on Apple's cores), few
   enough to stay in registers (16 on AVX2: 24 chains of 8 floats, as this
   loop once had, spill). */
#if defined(__aarch64__)
#define FMA_CHAINS 24
#else
#define FMA_CHAINS 12
#endif
static double fma_peak(int threads) {
    long iters = 4000000 * 16 / GPT3__VEC;
    double best = 0, flops = (double)threads * iters * FMA_CHAINS * GPT3__VEC * 2.0;
    for (int rep = 0; rep < 5; rep++) {
        float sink = 0;
        double t0 = now_seconds();
        #pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
            float acc[FMA_CHAINS][GPT3__VEC], x = 0.9999999f, y = 1e-7f;
            for (int r = 0; r < FMA_CHAINS; r++)
                for (int j = 0; j < GPT3__VEC; j++) acc[r][j] = (float)(r + j) * 0.01f;
            for (long i = 0; i < iters; i++)
                for (int r = 0; r < FMA_CHAINS; r++)
                    for (int j = 0; j < GPT3__VEC; j++) acc[r][j] = acc[r][j] * x + y;
            for (int r = 0; r < FMA_CHAINS; r++)
                for (int j = 0; j < GPT3__VEC; j++) sink += acc[r][j];
        }
        double dt = now_seconds() - t0;
        if (sink == 1234.5f) printf(" "); /* keeps the loop */
        if (flops / dt / 1e9 > best) best = flops / dt / 1e9;
    }
    return best;
}

/* Read bandwidth: sum the words of a 512 MB buffer, all threads. */
static double read_bandwidth(void) {
    size_t n = (size_t)512 << 20 >> 2;
    uint32_t *buf = (uint32_t *)malloc(n * sizeof(uint32_t));
    double best = 0;
    if (!buf) return 0;
    #pragma omp parallel for
    for (long long i = 0; i < (long long)n; i++) buf[i] = (uint32_t)i;
    for (int rep = 0; rep < 5; rep++) {
        uint32_t sum = 0;
        double t0 = now_seconds();
        #pragma omp parallel for reduction(+ : sum)
        for (long long i = 0; i < (long long)n; i++) sum += buf[i];
        double dt = now_seconds() - t0;
        if (sum == 12345u) printf(" ");
        if (n * 4.0 / dt / 1e9 > best) best = n * 4.0 / dt / 1e9;
    }
    free(buf);
    return best;
}

/* Floating-point operations of one training step (forward, backward):
   every matmul three times (out, dinp, dW: 2 flops a multiply-add), and
   attention's q.k and att.v, forward and their four backward products. */
static double step_flops(const GPT3Config *c, int B, int T) {
    double C = c->channels, hs = C / c->num_heads, matmul = 0, attention = 0;
    matmul = 2.0 * B * T * (c->num_layers * 12.0 * C * C + C * c->vocab_size);
    for (int l = 0; l < c->num_layers; l++) {
        int W = (c->local_window > 0 && l % 2 == 1) ? c->local_window : T;
        for (int t = 0; t < T; t++) attention += (t + 1 < W ? t + 1 : W);
    }
    attention *= (double)B * c->num_heads * hs * 4.0;
    return 3.0 * (matmul + attention);
}

static void random_tokens(int *tokens, size_t n, int V, uint64_t seed) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) tokens[i] = (int)(gpt3_rng_u32(&rng) % (uint32_t)V);
}

/* Uniform values in [-0.5, 0.5): real values in real pages (untouched
   calloc memory reads as one shared page of zeros, always in the cache). */
static void random_floats(float *x, size_t n, uint64_t seed) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] = gpt3_rng_float(&rng) - 0.5f;
}

/* One training step (forward + backward + AdamW), as a run of train does. */
static int bench_train(const Bench *b, const char *name, GPT3Config cfg, int B, int T) {
    GPT3 m;
    int rc, n = B * T, *inputs = (int *)malloc(2 * (size_t)n * sizeof(int));
    double ms[64];
    if (!inputs) return fail(name, GPT3_ERR_NOMEM);
    random_tokens(inputs, 2 * (size_t)n, cfg.vocab_size, 7);
    peak_rss_reset();
    if ((rc = gpt3_init(&m, &cfg, 1)) != GPT3_OK) { free(inputs); return fail(name, rc); }
    Optimizer opt = {0.9f, 0.95f, 1e-8f, 0.1f, -1.0f}; /* no clipping, as the PyTorch side */
    for (int r = -2; r < b->runs && rc == GPT3_OK; r++) { /* two warm-up steps */
        double t0 = now_seconds();
        float loss, norm;
        rc = optimizer_step(&m, 0, inputs, NULL, inputs + n, B, T, &opt, 1e-4f, r + 3, &loss, &norm);
        if (r >= 0) ms[r] = 1e3 * (now_seconds() - t0);
    }
    double rss = peak_rss_mb();
    gpt3_free(&m);
    free(inputs);
    if (rc != GPT3_OK) return fail(name, rc);
    double step = median(ms, b->runs), gflops = step_flops(&cfg, B, T) / step / 1e6;
    fprintf(stderr, "%-28s %8.1f ms/step %9.0f tokens/s %6.1f GFLOP/s (%4.1f%% of peak) %7.0f MB peak RSS\n",
            name, step, n * 1e3 / step, gflops, 100 * gflops / b->peak_all, rss);
    bench_put(b, name, "ms_per_step", step);
    bench_put(b, name, "tokens_per_s", n * 1e3 / step);
    bench_put(b, name, "gflops", gflops);
    bench_put(b, name, "peak_pct", 100 * gflops / b->peak_all);
    bench_put(b, name, "peak_rss_mb", rss);
    return 0;
}

/* Per-thread buffers for calling the header's layers directly. */
static int scratch_alloc(GPT3Scratch *s, size_t floats_per_thread) {
    s->threads = gpt3__max_threads();
    s->floats_per_thread = floats_per_thread;
    s->memory = (float *)malloc((size_t)s->threads * floats_per_thread * sizeof(float));
    return s->memory != NULL;
}

/* The three products of each of GPT-3 Small's Linear layers at B 4, T 64. */
static int bench_matmuls(const Bench *b) {
    static const struct { const char *name; int in, out; } layers[] = {
        {"qkv", 768, 2304}, {"attproj", 768, 768}, {"fc", 768, 3072},
        {"fcproj", 3072, 768}, {"lmhead", 768, 50257},
    };
    static const char *products[] = {"forward", "dinp", "dweight"};
    int N = 256;
    GPT3Scratch s;
    double total_flops = 0, total_ms = 0;
    if (!scratch_alloc(&s, GPT3__PANEL_FLOATS)) return fail("matmul", GPT3_ERR_NOMEM);
    for (size_t l = 0; l < sizeof(layers) / sizeof(layers[0]); l++) {
        int C = layers[l].in, OC = layers[l].out;
        float *x = (float *)calloc((size_t)N * C, sizeof(float));
        float *w = (float *)calloc((size_t)OC * C, sizeof(float));
        float *y = (float *)calloc((size_t)N * OC, sizeof(float));
        float *dx = (float *)calloc((size_t)N * C, sizeof(float));
        float *dw = (float *)calloc((size_t)OC * C, sizeof(float));
        if (!x || !w || !y || !dx || !dw) {
            free(x); free(w); free(y); free(dx); free(dw);
            break;
        }
        random_floats(x, (size_t)N * C, 5);
        random_floats(w, (size_t)OC * C, 6);
        for (int p = 0; p < 3; p++) {
            double ms[64];
            for (int r = -1; r < b->runs; r++) {
                double t0 = now_seconds();
                if (p == 0) gpt3__matmul_forward(y, x, w, NULL, 1, N, C, OC, &s);
                if (p == 1) gpt3__matmul_backward(dx, NULL, NULL, y, x, w, 1, N, C, OC, &s);
                if (p == 2) gpt3__matmul_backward(NULL, dw, NULL, y, x, w, 1, N, C, OC, &s);
                if (r >= 0) ms[r] = 1e3 * (now_seconds() - t0);
            }
            char name[64];
            double t = median(ms, b->runs), flops = 2.0 * N * C * OC, gflops = flops / t / 1e6;
            total_flops += flops;
            total_ms += t;
            snprintf(name, sizeof(name), "matmul_%s_%s", layers[l].name, products[p]);
            fprintf(stderr, "%-28s %8.2f ms  %6.1f GFLOP/s (%4.1f%% of peak)   N %d, in %d, out %d\n",
                    name, t, gflops, 100 * gflops / b->peak_all, N, C, OC);
            bench_put(b, name, "gflops", gflops);
            bench_put(b, name, "peak_pct", 100 * gflops / b->peak_all);
        }
        free(x); free(w); free(y); free(dx); free(dw);
    }
    free(s.memory);
    double all = total_flops / total_ms / 1e6;
    fprintf(stderr, "%-28s %8.2f ms  %6.1f GFLOP/s (%4.1f%% of peak)   the 15 products together\n",
            "matmul_small_all", total_ms, all, 100 * all / b->peak_all);
    bench_put(b, "matmul_small_all", "gflops", all);
    bench_put(b, "matmul_small_all", "peak_pct", 100 * all / b->peak_all);
    return 0;
}

/* One attention layer's core (no projections), forward + backward, at
   T 2048 (GPT-3 Small's heads): dense causal against a band of W 256. */
static int bench_attention(const Bench *b) {
    int T = 2048, C = 768, NH = 12, windows[2] = {T, 256};
    double result[2];
    GPT3Scratch s;
    if (!scratch_alloc(&s, gpt3__attention_scratch_floats(T))) return fail("attention", GPT3_ERR_NOMEM);
    float *qkv = (float *)calloc((size_t)T * 3 * C, sizeof(float));
    float *dqkv = (float *)calloc((size_t)T * 3 * C, sizeof(float));
    float *out = (float *)calloc((size_t)T * C, sizeof(float));
    float *att = (float *)calloc((size_t)NH * T * T, sizeof(float));
    float *datt = (float *)calloc((size_t)NH * T * T, sizeof(float));
    if (!qkv || !dqkv || !out || !att || !datt) {
        free(qkv); free(dqkv); free(out); free(att); free(datt); free(s.memory);
        return fail("attention", GPT3_ERR_NOMEM);
    }
    random_floats(qkv, (size_t)T * 3 * C, 3);
    /* dense and banded alternate, so that the machine's drift over the
       runs reaches both alike; the ratio is the median of each pair's */
    double ms[2][64], ratios[64];
    for (int r = -1; r < b->runs; r++)
        for (int k = 0; k < 2; k++) {
            double t0 = now_seconds();
            gpt3__attention_forward(out, att, qkv, 1, T, C, NH, windows[k], NULL, 0, &s);
            gpt3__attention_backward(dqkv, datt, out, qkv, att, 1, T, C, NH, windows[k], NULL, 0, &s);
            if (r >= 0) ms[k][r] = 1e3 * (now_seconds() - t0);
            if (r >= 0 && k == 1) ratios[r] = ms[1][r] / ms[0][r];
        }
    for (int k = 0; k < 2; k++) result[k] = median(ms[k], b->runs);
    double ratio = median(ratios, b->runs);
    free(qkv); free(dqkv); free(out); free(att); free(datt); free(s.memory);
    fprintf(stderr, "%-28s %8.1f ms dense, %.1f ms banded W 256: %.3f of dense (median of the pairs; forward + backward, 12 heads)\n",
            "attention_t2048", result[0], result[1], ratio);
    bench_put(b, "attention_t2048", "dense_ms", result[0]);
    bench_put(b, "attention_t2048", "banded_ms", result[1]);
    bench_put(b, "attention_t2048", "ratio", ratio);
    return 0;
}

/* GPT-3 Small writing 128 tokens after 64 at batch 1 with the KV cache.
   Each new token reads every weight once (wpe: one row) and the cache so
   far: bytes / bandwidth is the fastest any implementation can go. */
static int bench_generate(const Bench *b) {
    GPT3Config cfg;
    GPT3 m;
    GPT3KVCache kv;
    GPT3Sampler sampler;
    int prompt[64], n_new = 128, rc;
    double per_s[64];
    gpt3_preset(&cfg, "small");
    random_tokens(prompt, 64, cfg.vocab_size, 5);
    peak_rss_reset();
    if ((rc = gpt3_init(&m, &cfg, 1)) != GPT3_OK) return fail("generate", rc);
    if ((rc = gpt3_kv_init(&kv, &m)) != GPT3_OK) { gpt3_free(&m); return fail("generate", rc); }
    rc = gpt3_sampler_init(&sampler, cfg.vocab_size, 1.0f, 0, 1.0f, 1);
    for (int r = -1; r < b->runs && rc == GPT3_OK; r++) {
        gpt3_kv_reset(&kv);
        for (int i = 0; i < 64 && rc == GPT3_OK; i++) rc = gpt3_kv_forward(&m, &kv, prompt[i]);
        double t0 = now_seconds();
        for (int i = 0; i < n_new && rc == GPT3_OK; i++)
            rc = gpt3_kv_forward(&m, &kv, gpt3_sampler_sample(&sampler, kv.logits));
        if (r >= 0) per_s[r] = n_new / (now_seconds() - t0);
    }
    double rss = peak_rss_mb(), C = cfg.channels;
    double weights = (double)m.num_parameters - (cfg.max_seq_len - 1) * C;
    gpt3_sampler_free(&sampler);
    gpt3_kv_free(&kv);
    gpt3_free(&m);
    if (rc != GPT3_OK) return fail("generate", rc);
    double cache = 2.0 * cfg.num_layers * C * (64 + n_new / 2.0); /* average position */
    double bytes = 4.0 * (weights + cache), rate = median(per_s, b->runs);
    double bound = b->bandwidth * 1e9 / bytes;
    fprintf(stderr, "%-28s %8.1f tokens/s: %.1f GB/s of %.1f MB a token; bound %.1f tokens/s (%.0f%%) %7.0f MB peak RSS\n",
            "small_generate", rate, rate * bytes / 1e9, bytes / 1e6, bound, 100 * rate / bound, rss);
    bench_put(b, "small_generate", "tokens_per_s", rate);
    bench_put(b, "small_generate", "gb_s", rate * bytes / 1e9);
    bench_put(b, "small_generate", "bound_pct", 100 * rate / bound);
    bench_put(b, "small_generate", "peak_rss_mb", rss);
    return 0;
}

/* BPE encode of text repeated to 4 MiB: from an empty cache, then warm. */
static int bench_tokenizer(const Bench *b, const char *text_path, const char *encoder,
                           const char *bpe) {
    GPT3Tokenizer tok;
    size_t n, big_n = (size_t)4 << 20, n_ids = 0;
    double first = 0, best = 1e30;
    unsigned char *text = read_file(text_path, &n), *big = NULL;
    if (!text || n == 0 || open_tokenizer(&tok, encoder, bpe, NULL)) {
        free(text);
        return 1;
    }
    big = (unsigned char *)malloc(big_n);
    for (size_t i = 0; big && i < big_n; i++) big[i] = text[i % n];
    for (int rep = 0; big && rep < 3; rep++) { /* the first run starts with an empty cache */
        int *ids;
        double t0 = now_seconds();
        if (gpt3_encode(&tok, big, big_n, &ids, &n_ids) != GPT3_OK) break;
        double dt = now_seconds() - t0;
        if (rep == 0) first = dt;
        if (dt < best) best = dt;
        free(ids);
    }
    fprintf(stderr, "%-28s %8.1f MB/s from an empty cache, %.1f MB/s warm (%zu tokens from %s repeated to 4 MiB)\n",
            "tokenizer", big_n / first / 1e6, big_n / best / 1e6, n_ids, text_path);
    bench_put(b, "tokenizer", "mb_per_s", big_n / first / 1e6);
    bench_put(b, "tokenizer", "mb_per_s_warm", big_n / best / 1e6);
    free(big);
    free(text);
    gpt3_tokenizer_free(&tok);
    return 0;
}

static int cmd_bench(int argc, char **argv) {
    const char *text_path = "fixtures/tokenizer/bench.txt", *only = "";
    const char *encoder = "fixtures/gpt2/encoder.json", *bpe = "fixtures/gpt2/vocab.bpe";
    Bench b;
    memset(&b, 0, sizeof(b));
    b.runs = 5;
    Option opts[] = {
        {"threads", OPT_INT, &b.threads, "threads (0: OpenMP's default, all cores)"},
        {"runs", OPT_INT, &b.runs, "timed runs of each case (the median is shown), after warm-up"},
        {"only", OPT_STRING, &only, "run only the cases whose name contains this"},
        {"tsv", OPT_SWITCH, &b.tsv, "also print case<TAB>metric<TAB>value lines on stdout"},
        {"text", OPT_STRING, &text_path, "text to encode (repeated to 4 MiB)"},
        {"encoder", OPT_STRING, &encoder, "encoder.json of the BPE to time"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe"},
    };
    int rc = parse_flags("bench",
                         "Speed and memory: training steps, the matmuls, attention, generation and the tokenizer,\n"
                         "against this machine's FMA peak and read bandwidth (measured first).",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!check_range("bench", "runs", b.runs, 1, 64) || !check_range("bench", "threads", b.threads, 0, 1024))
        return 1;
    static const char *cases[] = {"small_b4_t64", "teach_b8_t256", "teach_banded_b2_t1024_w128", "matmul_small",
                                  "attention_t2048", "small_generate", "tokenizer"};
    int matched = 0;
    for (int i = 0; i < COUNT(cases); i++) matched += strstr(cases[i], only) != NULL;
    if (!matched) {
        fprintf(stderr, "demo bench: --only '%s' names no case; the cases:", only);
        for (int i = 0; i < COUNT(cases); i++) fprintf(stderr, " %s", cases[i]);
        fprintf(stderr, "\n");
        return 1;
    }
    if (b.threads > 0) set_threads(b.threads);
    b.threads = gpt3__max_threads();
    b.peak_1 = fma_peak(1);
    b.peak_all = fma_peak(b.threads);
    b.bandwidth = read_bandwidth();
    fprintf(stderr, "%d thread%s; FMA peak %.1f GFLOP/s (1 thread %.1f), read bandwidth %.1f GB/s; micro-kernel: "
            "%s, tile %d x %d\n", b.threads, b.threads == 1 ? "" : "s", b.peak_all, b.peak_1, b.bandwidth, GPT3__ISA,
            GPT3__MR, GPT3__NR);
    if (b.threads > 1 && b.peak_all < 0.75 * b.threads * b.peak_1)
        fprintf(stderr, "warning: %d threads reach %.1fx one thread's peak, not about %dx: the cores "
                        "are busy with other work (or the machine gives fewer than %d); figures from this "
                        "run are not comparable to others\n",
                b.threads, b.peak_all / b.peak_1, b.threads, b.threads);
    bench_put(&b, "peak", "threads", b.threads);
    bench_put(&b, "peak", "gflops_1thread", b.peak_1);
    bench_put(&b, "peak", "gflops_all", b.peak_all);
    bench_put(&b, "bandwidth", "gb_s", b.bandwidth);
    GPT3Config small, teach = {256, 256, 6, 6, 384, 0}, banded = {1024, 256, 6, 6, 384, 128};
    gpt3_preset(&small, "small");
    rc = 0;
    if (strstr("small_b4_t64", only)) rc |= bench_train(&b, "small_b4_t64", small, 4, 64);
    if (strstr("teach_b8_t256", only)) rc |= bench_train(&b, "teach_b8_t256", teach, 8, 256);
    if (strstr("teach_banded_b2_t1024_w128", only))
        rc |= bench_train(&b, "teach_banded_b2_t1024_w128", banded, 2, 1024);
    if (strstr("matmul_small", only)) rc |= bench_matmuls(&b);
    if (strstr("attention_t2048", only)) rc |= bench_attention(&b);
    if (strstr("small_generate", only)) rc |= bench_generate(&b);
    if (strstr("tokenizer", only)) rc |= bench_tokenizer(&b, text_path, encoder, bpe);
    return rc;
}

static int cmd_main_job(void);

static int argmax(const float *z, int K) {
    int best = 0;
    for (int k = 1; k < K; k++) if (z[k] > z[best]) best = k;
    return best;
}

/* ------------------------------------------------------------------------ */
/* finetune: the five steps of the articles                                 */
/*   1. load a pretrained model   2. add a task head   3. set the           */
/*   hyperparameters   4. train, evaluating on dev each epoch, stopping     */
/*   early   5. test and report                                             */

enum { TASK_CLASSIFY, TASK_NER, TASK_GENERATE };

typedef struct {
    int *ids;        /* the tokens                                          */
    int n;
    int label;       /* classify: the class                                 */
    int *targets;    /* ner: the tag of each token (-1: a word's later sub-
                        tokens); generate: the next token (-1: the prompt)  */
    int *words;      /* ner: the gold tag of each word                      */
    int n_words;
} Example;

typedef struct {
    Example *ex;
    int count, capacity;
    char **labels;   /* classify: class names; ner: tag names (the label set
                        is the training file's)                             */
    int n_labels;
    int cut;         /* examples longer than the context, cut to fit        */
} Dataset;

static void dataset_free(Dataset *d, int free_labels) {
    for (int i = 0; i < d->count; i++) {
        free(d->ex[i].ids);
        free(d->ex[i].targets);
        free(d->ex[i].words);
    }
    free(d->ex);
    for (int i = 0; free_labels && i < d->n_labels; i++) free(d->labels[i]);
    if (free_labels) free(d->labels);
    memset(d, 0, sizeof(*d));
}

/* The index of name in the label set; added if allowed, else -1. A
   report's confusion matrix is K x K: a thousand classes at most. */
#define MAX_LABELS 1024
static int label_index(Dataset *d, const char *name, int may_add) {
    for (int k = 0; k < d->n_labels; k++) if (strcmp(d->labels[k], name) == 0) return k;
    if (!may_add || d->n_labels == MAX_LABELS) return -1;
    char **grown = (char **)realloc(d->labels, (size_t)(d->n_labels + 1) * sizeof(char *));
    if (!grown) return -1;
    d->labels = grown;
    d->labels[d->n_labels] = (char *)malloc(strlen(name) + 1);
    if (!d->labels[d->n_labels]) return -1;
    strcpy(d->labels[d->n_labels], name);
    return d->n_labels++;
}

/* Why label_index gave -1 for a label on line line_no of path. */
static void say_unknown_label(const Dataset *d, const char *path, int line_no, const char *what, const char *name,
                              int is_train) {
    if (is_train && d->n_labels == MAX_LABELS)
        fprintf(stderr, "demo finetune: %s:%d: more than %d different %ss: this is not a label column\n", path,
                line_no, MAX_LABELS, what);
    else if (is_train)
        fprintf(stderr, "demo finetune: out of memory\n");
    else
        fprintf(stderr, "demo finetune: %s:%d: the %s '%s' does not appear in the training data (%s sets differ)\n",
                path, line_no, what, name, what);
}

/* Says that memory ran out while reading line line_no of path; 1. */
static int data_out_of_memory(const char *path, int line_no) {
    fprintf(stderr, "demo finetune: %s:%d: %s\n", path, line_no, gpt3_strerror(GPT3_ERR_NOMEM));
    return 1;
}

static Example *new_example(Dataset *d) {
    if (d->count == d->capacity) {
        int cap = d->capacity ? 2 * d->capacity : 256;
        Example *grown = (Example *)realloc(d->ex, (size_t)cap * sizeof(Example));
        if (!grown) return NULL;
        d->ex = grown;
        d->capacity = cap;
    }
    memset(&d->ex[d->count], 0, sizeof(Example));
    return &d->ex[d->count++];
}

/* Tokens of text (n bytes) appended to e->ids; -1 on failure. */
static int append_tokens(GPT3Tokenizer *tok, Example *e, const char *text, size_t n) {
    int *ids;
    size_t n_ids;
    if (gpt3_encode(tok, text, n, &ids, &n_ids) != GPT3_OK) return -1;
    int *grown = (int *)realloc(e->ids, (e->n + n_ids + 2) * sizeof(int));
    if (!grown) { free(ids); return -1; }
    e->ids = grown;
    memcpy(e->ids + e->n, ids, n_ids * sizeof(int));
    e->n += (int)n_ids;
    free(ids);
    return (int)n_ids;
}

/* TSV: "label<TAB>text" (classify) or "prompt<TAB>completion" (generate). */
static int load_tsv(const char *path, int task, GPT3Tokenizer *tok, Dataset *d, int is_train, int max_len) {
    size_t size;
    char *text = (char *)read_file(path, &size);
    if (!text) return 1;
    if (!no_nul(path, text, size)) { free(text); return 1; }
    int line_no = 0, status = 0;
    for (char *line = text + utf8_bom(text, size); status == 0 && line < text + size; line_no++) {
        char *eol = strchr(line, '\n'), *end = eol ? eol : text + size;
        if (end > line && end[-1] == '\r') end--;
        *end = 0;
        char *tab = strchr(line, '\t');
        if (end > line) {
            Example *e = tab && tab > line && tab + 1 < end ? new_example(d) : NULL;
            if (!tab || tab == line || tab + 1 >= end) {
                fprintf(stderr, "demo finetune: %s:%d: expected %s, separated by one tab\n", path, line_no + 1,
                        task == TASK_CLASSIFY ? "label<TAB>text" : "prompt<TAB>completion");
                status = 1;
            } else if (!e) {
                status = data_out_of_memory(path, line_no + 1);
            } else if (task == TASK_CLASSIFY) {
                *tab = 0;
                e->label = label_index(d, line, is_train);
                if (e->label < 0) {
                    say_unknown_label(d, path, line_no + 1, "label", line, is_train);
                    status = 1;
                } else if (append_tokens(tok, e, tab + 1, strlen(tab + 1)) < 0) {
                    status = data_out_of_memory(path, line_no + 1);
                }
                if (e->n > max_len) { e->n = max_len; d->cut++; }
            } else {
                int n_prompt = append_tokens(tok, e, line, (size_t)(tab - line));
                int n_completion = append_tokens(tok, e, tab + 1, strlen(tab + 1));
                if (n_prompt < 0 || n_completion < 0) { status = data_out_of_memory(path, line_no + 1); break; }
                if (tok->eot >= 0) e->ids[e->n++] = tok->eot; /* where a completion ends */
                int keep = e->n > max_len + 1 ? max_len + 1 : e->n, drop = e->n - keep;
                d->cut += drop > 0;
                memmove(e->ids, e->ids + drop, (size_t)keep * sizeof(int)); /* long prompts lose their start */
                e->n = keep - 1; /* inputs: all but the last token; targets: the next ones */
                e->targets = (int *)malloc((size_t)(e->n + 1) * sizeof(int));
                if (!e->targets) { status = data_out_of_memory(path, line_no + 1); break; }
                for (int t = 0; t < e->n; t++)
                    e->targets[t] = t + 1 + drop >= n_prompt ? e->ids[t + 1] : -1;
            }
        }
        line = eol ? eol + 1 : text + size;
    }
    free(text);
    if (status == 0 && d->count == 0) {
        fprintf(stderr, "demo finetune: %s has no examples\n", path);
        status = 1;
    }
    return status;
}

/* CoNLL: "token tag" lines (or CoNLL-2003's four columns, the tag last,
   with -DOCSTART- lines between documents), a blank line between
   sentences. Each word is tokenized with a space before it (but the
   first: gpt3_encode_words); its tag sits on its first sub-token, the
   others get -1 (ignored). */
#define MAX_WORDS 1024 /* a sentence's */
static int finish_sentence(GPT3Tokenizer *tok, Dataset *d, Example *e, char **words, int *tags, int n_words,
                           int max_len) {
    int first[MAX_WORDS + 1];
    size_t n_ids = 0;
    if (gpt3_encode_words(tok, (const char *const *)words, n_words, &e->ids, &n_ids, first) != GPT3_OK) return 1;
    first[n_words] = (int)n_ids;
    e->targets = (int *)malloc(((size_t)n_ids + 1) * sizeof(int));
    e->words = (int *)malloc(((size_t)n_words + 1) * sizeof(int));
    if (!e->targets || !e->words) return 1;
    while (first[e->n_words + 1] <= max_len) { /* a sentence longer than the context loses its last words */
        e->words[e->n_words] = tags[e->n_words];
        if (++e->n_words == n_words) break;
    }
    d->cut += e->n_words < n_words;
    e->n = first[e->n_words];
    for (int t = 0; t < e->n; t++) e->targets[t] = -1;
    for (int w = 0; w < e->n_words; w++) e->targets[first[w]] = tags[w];
    return 0;
}

/* A CoNLL line's first field (the token) and last (the gold tag, when
   there are two or more): where each starts and its length. Returns how
   many fields there are (0: a blank line). The line is left as it is. */
static int conll_columns(const char *line, size_t *token, size_t *token_n, size_t *tag, size_t *tag_n) {
    int n = 0;
    for (size_t i = 0; line[i];) {
        while (line[i] == ' ' || line[i] == '\t') i++;
        if (!line[i]) break;
        size_t start = i;
        while (line[i] && line[i] != ' ' && line[i] != '\t') i++;
        if (n++ == 0) { *token = start; *token_n = i - start; }
        *tag = start;
        *tag_n = i - start;
    }
    return n;
}

/* The same fields ("token tag", or CoNLL-2003's "token POS chunk tag"), cut
   out in place: *token and *tag NUL-terminated. */
static int conll_fields(char *line, char **token, char **tag) {
    size_t at = 0, n = 0, tag_at = 0, tag_n = 0;
    int fields = conll_columns(line, &at, &n, &tag_at, &tag_n);
    *token = *tag = NULL;
    if (!fields) return 0;
    line[at + n] = line[tag_at + tag_n] = 0;
    *token = line + at;
    *tag = line + tag_at;
    return fields;
}

static int load_conll(const char *path, GPT3Tokenizer *tok, Dataset *d, int is_train, int max_len) {
    size_t size;
    char *text = (char *)read_file(path, &size);
    if (!text) return 1;
    if (!no_nul(path, text, size)) { free(text); return 1; }
    char *words[MAX_WORDS];
    int tags[MAX_WORDS], n_words = 0, line_no = 0, status = 0;
    for (char *line = text + utf8_bom(text, size); status == 0 && line <= text + size; line_no++) {
        char *eol = strchr(line, '\n'), *end = eol ? eol : text + size;
        if (end > line && end[-1] == '\r') end--;
        *end = 0;
        char *token, *tag;
        int fields = conll_fields(line, &token, &tag);
        if (fields == 0 || strcmp(token, "-DOCSTART-") == 0) { /* the end of a sentence */
            if (n_words > 0) {
                Example *e = new_example(d);
                if (!e || finish_sentence(tok, d, e, words, tags, n_words, max_len))
                    status = data_out_of_memory(path, line_no + 1);
            }
            n_words = 0;
        } else if (fields == 1) {
            fprintf(stderr, "demo finetune: %s:%d: expected 'token tag' (or CoNLL-2003's 'token POS chunk tag')\n",
                    path, line_no + 1);
            status = 1;
        } else if (strcmp(tag, "O") != 0 && (strlen(tag) < 3 || (tag[0] != 'B' && tag[0] != 'I') || tag[1] != '-')) {
            fprintf(stderr, "demo finetune: %s:%d: '%s' is not a BIO tag (O, B-TYPE, I-TYPE), the last column\n",
                    path, line_no + 1, tag);
            status = 1;
        } else if (n_words == MAX_WORDS) {
            fprintf(stderr, "demo finetune: %s:%d: a sentence of more than %d words (a blank line missing?)\n", path,
                    line_no + 1, MAX_WORDS);
            status = 1;
        } else {
            tags[n_words] = label_index(d, tag, is_train);
            if (tags[n_words] < 0) {
                say_unknown_label(d, path, line_no + 1, "tag", tag, is_train);
                status = 1;
            }
            words[n_words++] = token;
        }
        if (!eol) break;
        line = eol + 1;
    }
    if (status == 0 && n_words > 0) {
        Example *e = new_example(d);
        if (!e || finish_sentence(tok, d, e, words, tags, n_words, max_len)) status = data_out_of_memory(path, line_no);
    }
    free(text);
    if (status == 0 && d->count == 0) {
        fprintf(stderr, "demo finetune: %s has no sentences\n", path);
        status = 1;
    }
    return status;
}

typedef struct {
    int task, epochs, batch, patience, trainable, lora_rank, seed;
    float lr, weight_decay, dropout, lora_alpha, distill_alpha, distill_temperature;
    GPT3 *teacher;   /* distillation, or NULL */
    const char *report_path;
    int prompt_tuning;       /* soft prompt vectors (0: none)                  */
    const int *prompt_init;  /* their first tokens, or NULL: random            */
    int n_prompt_init;
    int adv_steps;           /* adversarial training: 0 off, 1 FGM, K PGD      */
    float adv_epsilon, adv_alpha;
    float attack_epsilon;    /* the FGM attack of the robustness figure         */
    float augment;           /* data augmentation's strength (0: off)           */
    int quiet;               /* the comparison's runs: the summary lines only   */
    const char *state_path;  /* where the run stands, saved each epoch (NULL: not) */
    int resume;              /* continue the run saved there                    */
    int stop_after;          /* stop (saved) after this step (0: never)         */
    uint64_t settings;       /* the flags and data a saved run must share       */
} FinetuneArgs;

/* A batch of examples order[from .. from+B): right-padded inputs, lengths,
   labels (per sequence or per token). Returns T (the longest). */
static int make_batch(const Dataset *d, const int *order, int from, int B, int task,
                      int *inputs, int *lengths, int *labels) {
    int T = 1;
    for (int b = 0; b < B; b++) if (d->ex[order[from + b]].n > T) T = d->ex[order[from + b]].n;
    for (int b = 0; b < B; b++) {
        const Example *e = &d->ex[order[from + b]];
        lengths[b] = e->n > 0 ? e->n : 1;
        for (int t = 0; t < T; t++) {
            inputs[b * T + t] = t < e->n ? e->ids[t] : 0;
            if (task != TASK_CLASSIFY) labels[b * T + t] = t < e->n ? e->targets[t] : -1;
        }
        if (task == TASK_CLASSIFY) labels[b] = e->label;
    }
    return T;
}

/* ------------------------------------------------------------------------ */
/* finetune --augment P: a fresh, label-preserving edit of every training   */
/* example each epoch                                                       */
/*   classify, generate: one of EDA's edits (Wei & Zou 2019) on the text    */
/*     (generate: on the prompt only), chosen at random: random deletion,   */
/*     random swap or random crop, each of strength P                       */
/*   ner: mention replacement (Dai & Adel 2020): each entity mention is     */
/*     replaced, with probability P, by a random mention of the same type   */
/*     from the training set                                                */
/* The edit of example i in epoch e depends only on (seed, e, i): not on    */
/* the order examples are visited in, nor on the batch size.                */

typedef struct {
    int from, len;   /* its tokens: the table's tokens[from .. from+len)    */
} Mention;

typedef struct {
    int task, max_len;
    float p;         /* the strength: deletion probability, swaps per token,
                        the most a crop cuts, the replacement probability   */
    /* ner: the tag set, and the training set's mentions                    */
    int n_labels, n_types;
    char *kind;      /* [n_labels]: 'O', 'B' or 'I'                         */
    int *type;       /* [n_labels]: the entity type of B-X and I-X (0 ..
                        n_types-1), -1 for O                                */
    int *tokens;     /* [n_tokens]: the mentions' tokens, one after another */
    int *targets;    /* [n_tokens]: their targets (a word's tag on its first
                        sub-token, -1 on the others), as in the example     */
    int n_tokens;
    Mention *mentions; /* [n_mentions], grouped by (type, at the start)     */
    int n_mentions;
    int *group;      /* [2*n_types + 1]: group g = 2*type + at_start holds
                        mentions[group[g] .. group[g+1]); at_start: the
                        mention opened its sentence, so its first token was
                        encoded without the space before it                 */
} Augmenter;

/* A tag's shape: 0 for a word's later sub-token (-1), else 'O', 'B' or 'I'
   (a tag outside the label set counts as O: it is copied, never replaced). */
static char tag_kind(const Augmenter *a, int tag) {
    if (tag < 0) return 0;
    return tag < a->n_labels ? a->kind[tag] : 'O';
}

/* ner: the shape and type of each tag name ("O", "B-X", "I-X"); types are
   numbered in their order of first appearance. 1: out of memory. */
static int read_tag_set(Augmenter *a, char *const *labels, int n_labels) {
    a->n_labels = n_labels;
    a->kind = (char *)malloc((size_t)n_labels + 1);
    a->type = (int *)malloc(((size_t)n_labels + 1) * sizeof(int));
    if (!a->kind || !a->type) return 1;
    for (int k = 0; k < n_labels; k++) {
        const char *name = labels[k];
        int tagged = (name[0] == 'B' || name[0] == 'I') && name[1] == '-';
        a->kind[k] = tagged ? name[0] : 'O';
        a->type[k] = -1;
        for (int j = 0; tagged && j < k && a->type[k] < 0; j++) /* a type seen before? */
            if (a->kind[j] != 'O' && strcmp(labels[j] + 2, name + 2) == 0) a->type[k] = a->type[j];
        if (tagged && a->type[k] < 0) a->type[k] = a->n_types++;
    }
    return 0;
}

/* The end (exclusive) of the mention that opens at token t (a B-X word's
   first sub-token): its sub-tokens and the I-X words after it. */
static int mention_end(const Augmenter *a, const Example *e, int t) {
    int x = a->type[e->targets[t]], u = t + 1;
    while (u < e->n && (e->targets[u] < 0 || (tag_kind(a, e->targets[u]) == 'I' && a->type[e->targets[u]] == x)))
        u++;
    return u;
}

/* ner: the table of the training set's mentions. Two passes: the first
   counts (fill = 0), the second copies each mention to its group's next
   place (cursor[g]: where group g's next mention goes). A mention is a
   B-X word and the I-X words after it; an I-X word after an O or another
   type (IOB1 data) opens no mention, so it is neither in the table nor
   replaced. Mentions that occur often are in the table as often. */
static void scan_mentions(Augmenter *a, const Dataset *train, int fill, int *cursor) {
    for (int i = 0; i < train->count; i++) {
        const Example *e = &train->ex[i];
        for (int t = 0; t < e->n;) {
            if (tag_kind(a, e->targets[t]) != 'B') { t++; continue; }
            int u = mention_end(a, e, t), g = 2 * a->type[e->targets[t]] + (t == 0);
            if (fill) {
                Mention *m = &a->mentions[cursor[g]++];
                m->from = a->n_tokens;
                m->len = u - t;
                memcpy(a->tokens + a->n_tokens, e->ids + t, (size_t)(u - t) * sizeof(int));
                memcpy(a->targets + a->n_tokens, e->targets + t, (size_t)(u - t) * sizeof(int));
            } else {
                cursor[g]++;
            }
            a->n_tokens += u - t;
            t = u;
        }
    }
}

static int build_mention_table(Augmenter *a, const Dataset *train) {
    int groups = 2 * a->n_types, *cursor = (int *)malloc(((size_t)groups + 1) * sizeof(int));
    a->group = (int *)malloc(((size_t)groups + 1) * sizeof(int));
    if (!cursor || !a->group) { free(cursor); return 1; }
    memset(cursor, 0, ((size_t)groups + 1) * sizeof(int));
    scan_mentions(a, train, 0, cursor); /* cursor[g]: group g's size */
    a->group[0] = 0;
    for (int g = 0; g < groups; g++) a->group[g + 1] = a->group[g] + cursor[g];
    a->n_mentions = a->group[groups];
    a->mentions = (Mention *)malloc(((size_t)a->n_mentions + 1) * sizeof(Mention));
    a->tokens = (int *)malloc(((size_t)a->n_tokens + 1) * sizeof(int));
    a->targets = (int *)malloc(((size_t)a->n_tokens + 1) * sizeof(int));
    if (!a->mentions || !a->tokens || !a->targets) { free(cursor); return 1; }
    memcpy(cursor, a->group, (size_t)groups * sizeof(int)); /* cursor[g]: group g's first place */
    a->n_tokens = 0;
    scan_mentions(a, train, 1, cursor);
    free(cursor);
    return 0;
}

static void augmenter_free(Augmenter *a) {
    free(a->kind); free(a->type); free(a->tokens); free(a->targets); free(a->mentions); free(a->group);
    memset(a, 0, sizeof(*a));
}

/* An augmenter for task with strength p (0 to 1) for examples of at most
   max_len tokens (the model's context); ner reads the training set's
   mentions. 0: done; 1: a p outside [0, 1], a max_len below 1, or out of
   memory (a is then left freed). */
static int augmenter_init(Augmenter *a, const Dataset *train, int task, float p, int max_len) {
    memset(a, 0, sizeof(*a));
    if (!(p >= 0.0f && p <= 1.0f) || max_len < 1) return 1;
    a->task = task;
    a->p = p;
    a->max_len = max_len;
    if (task != TASK_NER) return 0;
    if (read_tag_set(a, train->labels, train->n_labels) || build_mention_table(a, train)) {
        augmenter_free(a);
        return 1;
    }
    return 0;
}

/* --- EDA's three edits: src[0 .. n) edited into dst (no overlap); each
       returns the new length, at least 1 when n >= 1 ---------------------- */

/* floor(p*n + half), as for the decimal p that was typed: a float p is off
   by up to 6e-8 of itself (0.7f is 0.69999999), so a little slack. */
static int share_of(float p, int n, double half) {
    return (int)floor((double)p * n + half + 1e-6 * n);
}

/* Random deletion: each token goes with probability p; had all gone, one
   of them (at random) stays. */
static int delete_tokens(const int *src, int n, float p, GPT3Rng *rng, int *dst) {
    int m = 0;
    for (int t = 0; t < n; t++)
        if (gpt3_rng_float(rng) >= p) dst[m++] = src[t];
    if (m == 0 && n > 0) dst[m++] = src[gpt3_rng_u32(rng) % (uint32_t)n];
    return m;
}

/* Random swap: round(p*n) swaps (at least one when p > 0), each of two
   different positions drawn at random. */
static int swap_tokens(const int *src, int n, float p, GPT3Rng *rng, int *dst) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(int));
    if (n < 2) return n;
    int swaps = share_of(p, n, 0.5);
    if (swaps < 1 && p > 0.0f) swaps = 1;
    for (int s = 0; s < swaps; s++) {
        int x = (int)(gpt3_rng_u32(rng) % (uint32_t)n);
        int y = (x + 1 + (int)(gpt3_rng_u32(rng) % (uint32_t)(n - 1))) % n; /* any position but x */
        int kept = dst[x];
        dst[x] = dst[y];
        dst[y] = kept;
    }
    return n;
}

/* Random crop: a contiguous span of a length drawn uniformly between
   n - floor(p*n) = ceil((1-p)*n) (at least 1) and n, at a place drawn
   uniformly. */
static int crop_tokens(const int *src, int n, float p, GPT3Rng *rng, int *dst) {
    if (n < 1) return 0;
    int shortest = n - share_of(p, n, 0.0);
    if (shortest < 1) shortest = 1;
    int len = shortest + (int)(gpt3_rng_u32(rng) % (uint32_t)(n - shortest + 1));
    int from = (int)(gpt3_rng_u32(rng) % (uint32_t)(n - len + 1));
    memcpy(dst, src + from, (size_t)len * sizeof(int));
    return len;
}

/* One of the three, chosen uniformly. */
static int edit_tokens(const int *src, int n, float p, GPT3Rng *rng, int *dst) {
    switch (gpt3_rng_u32(rng) % 3u) {
    case 0: return delete_tokens(src, n, p, rng, dst);
    case 1: return swap_tokens(src, n, p, rng, dst);
    default: return crop_tokens(src, n, p, rng, dst);
    }
}

/* --- the tasks ------------------------------------------------------------ */

/* generate: the prompt's length. load_tsv gives the inputs ids[0 .. n) the
   targets ids[1 .. n] and sets -1 where the target is still the prompt: the
   -1s lead, and the prompt's last token has the completion's first as its
   target, so k leading -1s mean a prompt of k+1 tokens. None means 1 or 0
   (cut away by a long completion), which an edit leaves alone anyway. */
static int prompt_length(const Example *e) {
    int k = 0;
    while (k < e->n && e->targets[k] < 0) k++;
    return k > 0 ? k + 1 : 0;
}

/* generate: the prompt edited, the completion and its targets as they were;
   the targets rebuilt: -1 before the prompt's last token, then the next one.
   A prompt of fewer than 2 tokens is left as it is. */
static void augment_prompt(const Augmenter *a, const Example *in, GPT3Rng *rng, Example *out) {
    int n_prompt = prompt_length(in), kept = n_prompt;
    if (n_prompt >= 2) kept = edit_tokens(in->ids, n_prompt, a->p, rng, out->ids);
    else if (n_prompt > 0) memcpy(out->ids, in->ids, (size_t)n_prompt * sizeof(int));
    memcpy(out->ids + kept, in->ids + n_prompt, (size_t)(in->n + 1 - n_prompt) * sizeof(int)); /* + the last target */
    out->n = kept + in->n - n_prompt;
    for (int t = 0; t < out->n; t++) out->targets[t] = t + 1 >= kept ? out->ids[t + 1] : -1;
}

/* ner: a random mention of type x from the table that fits at the
   sentence's start (at_start) or elsewhere; NULL if there is none. */
static const Mention *pick_mention(const Augmenter *a, int x, int at_start, GPT3Rng *rng) {
    int g = 2 * x + at_start, count = a->group[g + 1] - a->group[g];
    return count > 0 ? &a->mentions[a->group[g] + (int)(gpt3_rng_u32(rng) % (uint32_t)count)] : NULL;
}

/* ner: each mention replaced with probability p by one of the same type, its
   tokens and targets (so its B-/I- tags) with it; one that would make the
   sentence longer than max_len is not made. words rebuilt from the targets. */
static void replace_mentions(const Augmenter *a, const Example *in, GPT3Rng *rng, Example *out) {
    int n = 0;
    for (int t = 0; t < in->n;) {
        int u = t + 1; /* in[t .. u): copied as it is, or replaced */
        const Mention *m = NULL;
        if (tag_kind(a, in->targets[t]) == 'B') {
            u = mention_end(a, in, t);
            if (gpt3_rng_float(rng) < a->p) m = pick_mention(a, a->type[in->targets[t]], t == 0, rng);
            if (m && n + m->len + (in->n - u) > a->max_len) m = NULL; /* too long: kept */
        }
        const int *ids = m ? a->tokens + m->from : in->ids + t, *targets = m ? a->targets + m->from : in->targets + t;
        int len = m ? m->len : u - t;
        memcpy(out->ids + n, ids, (size_t)len * sizeof(int));
        memcpy(out->targets + n, targets, (size_t)len * sizeof(int));
        n += len;
        t = u;
    }
    out->n = n;
    for (int t = 0; t < n; t++)
        if (out->targets[t] >= 0) out->words[out->n_words++] = out->targets[t];
}

/* The seed of example i's edit in epoch epoch: a hash of the three
   (splitmix64's finaliser after each), so that nearby (epoch, i) give
   unrelated streams. */
static uint64_t augment_key(uint64_t seed, int epoch, int i) {
    uint64_t z = seed;
    for (int round = 0; round < 2; round++) {
        z += 0x9E3779B97F4A7C15ULL * (1 + (uint64_t)(uint32_t)(round ? i : epoch));
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
    }
    return z;
}

/* An augmented copy of in (training example i) for epoch epoch into out;
   the same (seed, epoch, i) always give the same copy. out's buffers are
   the caller's, reused from call to call: zero out before its first call
   and give it to no other function but this one (and free: free its ids,
   targets and words, or dataset_free a Dataset made of such outputs); the
   first call gives it room for max_len+1 ids, targets and words, which any
   later one fits in. in must have at most max_len tokens, as the loaders
   make them. 0: done; 1: in is longer than max_len, or out of memory. */
static int augment_example(const Augmenter *a, const Example *in, uint64_t seed, int epoch, int i, Example *out) {
    if (in->n < 0 || in->n > a->max_len) return 1;
    if (!out->ids || !out->targets || !out->words) {
        size_t room = ((size_t)a->max_len + 1) * sizeof(int);
        free(out->ids); free(out->targets); free(out->words);
        out->ids = (int *)malloc(room);
        out->targets = (int *)malloc(room);
        out->words = (int *)malloc(room);
        if (!out->ids || !out->targets || !out->words) {
            free(out->ids); free(out->targets); free(out->words);
            memset(out, 0, sizeof(*out));
            return 1;
        }
    }
    GPT3Rng rng;
    gpt3_rng_seed(&rng, augment_key(seed, epoch, i));
    out->label = in->label;
    out->n_words = 0;
    if (a->task == TASK_NER) replace_mentions(a, in, &rng, out);
    else if (a->task == TASK_GENERATE) augment_prompt(a, in, &rng, out);
    else out->n = edit_tokens(in->ids, in->n, a->p, &rng, out->ids);
    return 0;
}

/* The batch of examples order[from .. from+B) augmented for this epoch, as
   make_batch makes it; the copies live in copies->ex (B examples, reused). */
static int augmented_batch(const Augmenter *aug, const Dataset *train, const int *order, int from, int B,
                           uint64_t seed, int epoch, Dataset *copies, int *inputs, int *lengths, int *labels) {
    int *in_order = (int *)malloc((size_t)B * sizeof(int)), b = 0;
    for (; in_order && b < B; b++) {
        in_order[b] = b;
        if (augment_example(aug, &train->ex[order[from + b]], seed, epoch, order[from + b], &copies->ex[b])) break;
    }
    int T = b == B ? make_batch(copies, in_order, 0, B, aug->task, inputs, lengths, labels) : -1;
    free(in_order);
    return T; /* -1: out of memory */
}

/* The task's forward: the head for classify and ner, the LM for generate. */
static int task_forward(GPT3 *m, int task, const int *inputs, const int *lengths, const int *labels, int B, int T) {
    return task == TASK_GENERATE ? gpt3_forward(m, inputs, labels, B, T)
                                 : gpt3_head_forward(m, inputs, lengths, labels, B, T);
}

/* The teacher's logits for the batch, for distillation, in *soft. */
static int teacher_logits(GPT3 *teacher, int task, const int *inputs, const int *lengths, int B, int T,
                          const float **soft) {
    int rc = task_forward(teacher, task, inputs, lengths, NULL, B, T);
    *soft = rc != GPT3_OK ? NULL : task == TASK_GENERATE ? teacher->logits : teacher->head->logits;
    return rc;
}

/* Evaluate on a dataset: fills r (classify, ner) and *loss, the mean loss
   (generate: its exp is the perplexity). GPT3_OK, or why not. */
static int evaluate_task(GPT3 *m, const Dataset *d, int task, int B, GPT3Report *r, const char *const *tag_names,
                         double *loss) {
    int maxT = m->config.max_seq_len, n = d->count, rc = GPT3_OK;
    int *order = (int *)malloc((size_t)n * sizeof(int)), *inputs = (int *)malloc((size_t)B * maxT * sizeof(int));
    int *lengths = (int *)malloc((size_t)B * sizeof(int)), *labels = (int *)malloc((size_t)B * maxT * sizeof(int));
    size_t total_words = 0, at = 0;
    for (int i = 0; i < n; i++) total_words += (size_t)d->ex[i].n_words + 1;
    int *gold = (int *)malloc((total_words + (size_t)n + 1) * sizeof(int)), *pred = (int *)malloc((total_words + (size_t)n + 1) * sizeof(int));
    double loss_sum = 0.0;
    int batches = 0;
    if (r) memset(r, 0, sizeof(*r)); /* generate fills no report */
    m->training = 0; /* evaluation: no dropout */
    if (!order || !inputs || !lengths || !labels || !gold || !pred) rc = GPT3_ERR_NOMEM;
    for (int i = 0; rc == GPT3_OK && i < n; i++) order[i] = i;
    for (int from = 0; rc == GPT3_OK && from < n; from += B) {
        int b_count = n - from < B ? n - from : B;
        int T = make_batch(d, order, from, b_count, task, inputs, lengths, labels);
        if ((rc = task_forward(m, task, inputs, lengths, labels, b_count, T)) != GPT3_OK) break;
        loss_sum += task == TASK_GENERATE ? m->mean_loss : m->head->mean_loss;
        batches++;
        for (int b = 0; b < b_count && task != TASK_GENERATE; b++) {
            const Example *e = &d->ex[from + b];
            const float *z = m->head->logits;
            int K = m->head->num_classes;
            if (task == TASK_CLASSIFY) {
                gold[at] = e->label;
                pred[at++] = K == 1 ? z[b] > 0.0f : argmax(z + (size_t)b * K, K);
                continue;
            }
            for (int t = 0, w = 0; t < e->n && w < e->n_words; t++) {
                if (e->targets[t] < 0) continue; /* a later sub-token */
                gold[at] = e->words[w++];
                pred[at++] = argmax(z + ((size_t)b * T + t) * K, K);
            }
            gold[at] = pred[at] = -1; /* a boundary between sentences */
            at++;
        }
    }
    if (rc == GPT3_OK && r && task == TASK_CLASSIFY) rc = gpt3_report_classes(r, gold, pred, at, d->n_labels);
    if (rc == GPT3_OK && r && task == TASK_NER) rc = gpt3_report_entities(r, gold, pred, at, tag_names, d->n_labels);
    free(order); free(inputs); free(lengths); free(labels); free(gold); free(pred);
    *loss = batches ? loss_sum / batches : 0.0;
    return rc;
}

/* Higher is better: macro F1 (classify), entity micro F1 (ner), minus the
   loss (generate). */
static double task_metric(int task, const GPT3Report *r, double loss) {
    return task == TASK_CLASSIFY ? r->macro.f1 : task == TASK_NER ? r->micro.f1 : -loss;
}

/* Append a section (its title, then text) to the report file, if there is
   one. A write that fails is said once: the fine-tuning matters more
   than its report. */
static void append_report(const char *path, const char *title, const char *text) {
    static int failed = 0;
    if (!path || failed) return;
    FILE *f = fopen(path, "a");
    int ok = f && fprintf(f, "\n-- %s --\n%s", title, text) >= 0;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "demo finetune: writing %s failed (%s): the report there is incomplete\n", path, strerror(errno));
        failed = 1;
    }
}

/* Print a report to stderr and append it to the report file. */
static void show_report(const FinetuneArgs *a, const char *title, int task, const GPT3Report *r,
                        double loss, const Dataset *train) {
    const char *const *names = task == TASK_CLASSIFY ? (const char *const *)train->labels : NULL;
    char line[128], *text = line;
    if (task == TASK_GENERATE) {
        snprintf(line, sizeof(line), "loss %.4f, perplexity %.3f\n", loss, exp(loss));
    } else { /* as long as the report needs */
        size_t size = gpt3_report_format(r, names, line, 1) + 1;
        text = (char *)malloc(size);
        if (!text) {
            fprintf(stderr, "demo finetune: the report '%s': out of memory\n", title);
            return;
        }
        gpt3_report_format(r, names, text, size);
    }
    if (!a->quiet) fprintf(stderr, "\n-- %s --\n%s", title, text);
    append_report(a->report_path, title, text);
    if (text != line) free(text);
}

/* Test accuracy under an FGM attack of strength epsilon: each example's
   token embeddings moved by epsilon along the gradient of its loss at the
   gold label (gpt3_set_adversarial's r), then classified, into *accuracy.
   classify only. GPT3_OK, or why not. */
static int attacked_accuracy(GPT3 *m, const Dataset *d, int B, float epsilon, double *accuracy) {
    int maxT = m->config.max_seq_len, n = d->count, correct = 0, done = 0, rc = GPT3_OK;
    int *order = (int *)malloc((size_t)n * sizeof(int)), *inputs = (int *)malloc((size_t)B * maxT * sizeof(int));
    int *lengths = (int *)malloc((size_t)B * sizeof(int)), *labels = (int *)malloc((size_t)B * maxT * sizeof(int));
    GPT3Adversary saved = m->adversary;
    m->training = 0;
    gpt3_set_adversarial(m, 1, epsilon, 0.0f);
    if (!order || !inputs || !lengths || !labels) rc = GPT3_ERR_NOMEM;
    for (int i = 0; rc == GPT3_OK && i < n; i++) order[i] = i;
    for (int from = 0; rc == GPT3_OK && from < n; from += B) {
        int b_count = n - from < B ? n - from : B, K = m->head->num_classes;
        int T = make_batch(d, order, from, b_count, TASK_CLASSIFY, inputs, lengths, labels);
        rc = gpt3_head_forward(m, inputs, lengths, labels, b_count, T);
        if (rc == GPT3_OK) rc = gpt3_head_backward(m);
        if (rc != GPT3_OK) break;
        for (int b = 0; b < b_count; b++, done++) { /* the logits are the attacked forward's */
            const float *z = m->head->logits + (size_t)b * K;
            correct += (K == 1 ? z[0] > 0.0f : argmax(z, K)) == labels[b];
        }
    }
    gpt3_zero_grad(m);
    m->adversary.steps = saved.steps; /* the training settings back (buffers kept) */
    m->adversary.epsilon = saved.epsilon;
    m->adversary.alpha = saved.alpha;
    free(order); free(inputs); free(lengths); free(labels);
    *accuracy = done ? (double)correct / done : 0.0;
    return rc;
}

/* Step 3's line: what trains, and how. */
static void say_setup(const GPT3 *m, const FinetuneArgs *a) {
    int task = a->task;
    fprintf(stderr, "head: %s; trains: %s%s (%zu parameters); AdamW lr %g, weight decay %g, dropout %g, batch %d, "
            "up to %d epochs, patience %d%s",
            task == TASK_GENERATE ? "the LM head (loss on the completion only)" : m->head->kind == GPT3_HEAD_BINARY ? "binary (sigmoid + BCE)" :
            m->head->kind == GPT3_HEAD_CLASSES ? "classes (softmax + cross-entropy)" : "tags (a softmax per token)",
            a->prompt_tuning ? "a soft prompt" : a->trainable < 0 ? "everything" : a->trainable == 0 ? "the head only" :
            "the top blocks and the head", a->lora_rank > 0 ? " + LoRA adapters" : a->prompt_tuning && task != TASK_GENERATE ? " and the head" : "",
            gpt3_trainable_parameters(m), a->lr, a->weight_decay, a->dropout, a->batch, a->epochs, a->patience,
            a->teacher ? ", distilled from a teacher" : "");
    if (a->adv_steps) fprintf(stderr, "; adversarial training: %s, epsilon %g", a->adv_steps == 1 ? "FGM" : "PGD",
                              a->adv_epsilon);
    if (a->adv_steps > 1) fprintf(stderr, ", %d steps of %g", a->adv_steps, a->adv_alpha);
    if (a->augment > 0.0f) fprintf(stderr, "; data augmentation, strength %g", a->augment);
    fprintf(stderr, "\n");
}

/* Step 2 and 3: the head, what trains, the techniques. */
static int set_up(GPT3 *m, const FinetuneArgs *a, const Dataset *train) {
    int task = a->task, rc = GPT3_OK;
    uint64_t seed = (uint64_t)a->seed;
    if (task == TASK_CLASSIFY)
        rc = train->n_labels == 2 ? gpt3_head_attach(m, GPT3_HEAD_BINARY, 1, seed)
                                  : gpt3_head_attach(m, GPT3_HEAD_CLASSES, train->n_labels, seed);
    if (task == TASK_NER) rc = gpt3_head_attach(m, GPT3_HEAD_TAGS, train->n_labels, seed);
    if (rc == GPT3_OK && task != TASK_GENERATE) /* saved with the head, so predictions can be named */
        rc = gpt3_head_set_names(m, (const char *const *)train->labels, train->n_labels);
    if (rc != GPT3_OK) return fail("head", rc);
    gpt3_freeze(m, a->prompt_tuning ? 0 : a->trainable);
    if (a->lora_rank > 0 && (rc = gpt3_lora_attach(m, a->lora_rank, a->lora_alpha, seed)) != GPT3_OK)
        return fail("LoRA", rc);
    if (a->prompt_tuning &&
        (rc = gpt3_prompt_attach(m, a->prompt_tuning, a->prompt_init, a->n_prompt_init, seed)) != GPT3_OK)
        return fail("prompt tuning", rc);
    if ((rc = gpt3_set_adversarial(m, a->adv_steps, a->adv_epsilon, a->adv_alpha)) != GPT3_OK)
        return fail("adversarial training", rc);
    say_setup(m, a);
    return 0;
}

/* ---- finetune --resume ------------------------------------------------------
   Where a run stands is saved with what trains, in OUT/finetune.state
   (gpt3_save_tuning), at the end of every epoch and after the step where
   the run was interrupted (Ctrl-C, SIGTERM) or told to stop (--stop-after).
   A resumed run replays the epochs' shuffles from the seed and goes on
   with the same bits as a run that never stopped. The file is removed
   once the fine-tuned model is saved. */
typedef struct {
    int step;              /* AdamW steps taken                               */
    int epoch, from;       /* the epoch in progress (1-based); its examples done */
    int best_epoch;        /* 0: the model before fine-tuning                 */
    int waited;            /* epochs since the best                           */
    uint64_t dropout_seed; /* m->dropout_seed: the next dropout masks         */
    double best_metric;    /* the best epoch's dev score                      */
    double loss_sum;       /* the epoch's training losses so far             */
    int saved;             /* the step the file holds (-1: none; not saved)   */
} Progress;

enum { SAVED_STEP, SAVED_EPOCH, SAVED_FROM, SAVED_BEST_EPOCH, SAVED_WAITED, SAVED_DROPOUT_SEED, SAVED_BEST_METRIC,
       SAVED_LOSS_SUM, SAVED_REPORT_BYTES, SAVED_SETTINGS, SAVED_COUNTERS };

static uint64_t double_bits(double x) { uint64_t u; memcpy(&u, &x, sizeof(u)); return u; }
static double bits_double(uint64_t u) { double x; memcpy(&x, &u, sizeof(x)); return x; }

static uint64_t hash_examples(uint64_t h, const Dataset *d) {
    for (int i = 0; i < d->count; i++) {
        const Example *e = &d->ex[i];
        h = fnv1a(h, &e->n, sizeof(e->n));
        h = fnv1a(h, e->ids, (size_t)e->n * sizeof(int));
        h = fnv1a(h, &e->label, sizeof(e->label));
        if (e->targets) h = fnv1a(h, e->targets, (size_t)e->n * sizeof(int));
    }
    return h;
}

/* What a resumed run must share with the saved one: the flags that shape
   training, and the training and dev data. */
static uint64_t finetune_settings(const FinetuneArgs *a, const Dataset *train, const Dataset *dev) {
    int numbers[] = {a->task, a->epochs, a->batch, a->patience, a->trainable, a->lora_rank, a->seed,
                     a->prompt_tuning, a->n_prompt_init, a->adv_steps, a->teacher != NULL, train->n_labels};
    float reals[] = {a->lr, a->weight_decay, a->dropout, a->lora_alpha, a->distill_alpha, a->distill_temperature,
                     a->adv_epsilon, a->adv_alpha, a->augment};
    uint64_t h = fnv1a(FNV1A_START, numbers, sizeof(numbers));
    h = fnv1a(h, reals, sizeof(reals));
    if (a->prompt_init) h = fnv1a(h, a->prompt_init, (size_t)a->n_prompt_init * sizeof(int));
    return hash_examples(hash_examples(h, train), dev);
}

/* Save where the run stands: 0, or 1 (said). */
static int save_progress(const GPT3 *m, const FinetuneArgs *a, const GPT3Snapshot *best, Progress *p) {
    uint64_t report_bytes = 0, c[SAVED_COUNTERS];
    regular_file(a->report_path, &report_bytes);
    c[SAVED_STEP] = (uint64_t)p->step;
    c[SAVED_EPOCH] = (uint64_t)p->epoch;
    c[SAVED_FROM] = (uint64_t)p->from;
    c[SAVED_BEST_EPOCH] = (uint64_t)p->best_epoch;
    c[SAVED_WAITED] = (uint64_t)p->waited;
    c[SAVED_DROPOUT_SEED] = p->dropout_seed;
    c[SAVED_BEST_METRIC] = double_bits(p->best_metric);
    c[SAVED_LOSS_SUM] = double_bits(p->loss_sum);
    c[SAVED_REPORT_BYTES] = report_bytes;
    c[SAVED_SETTINGS] = a->settings;
    int rc = gpt3_save_tuning(m, best, c, SAVED_COUNTERS, a->state_path);
    if (rc == GPT3_OK) {
        p->saved = p->step;
        return 0;
    }
    fprintf(stderr, "demo finetune: saving where the run stands (step %d) to %s failed: %s\n", p->step, a->state_path,
            gpt3_strerror(rc));
    if (p->saved >= 0)
        fprintf(stderr, "  it still holds step %d: the same command with --resume goes on from there\n", p->saved);
    else
        fprintf(stderr, "  no step of this run was saved yet\n");
    return 1;
}

/* The report as it was at the save: what a stopped run wrote after it is
   written again. */
static void report_keep(const char *path, uint64_t bytes) {
    uint64_t size = 0;
    if (!regular_file(path, &size) || size <= bytes) return;
    size_t n = 0;
    unsigned char *text = read_file(path, &n);
    FILE *f = text && n >= bytes ? fopen(path, "wb") : NULL;
    int ok = f && fwrite(text, 1, (size_t)bytes, f) == bytes;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, "demo finetune: keeping the first %llu bytes of %s failed: its report may repeat a part\n",
                (unsigned long long)bytes, path);
    free(text);
}

/* --resume: what trains, the best snapshot and *p, from the saved run: 0,
   or 1 (said). */
static int load_progress(GPT3 *m, const FinetuneArgs *a, const Dataset *train, GPT3Snapshot *best, Progress *p) {
    uint64_t c[SAVED_COUNTERS];
    int rc = gpt3_load_tuning(m, best, c, SAVED_COUNTERS, a->state_path);
    if (rc == GPT3_ERR_MISMATCH || (rc == GPT3_OK && c[SAVED_SETTINGS] != a->settings)) {
        fprintf(stderr, "demo finetune: --resume: the run saved in %s was started with other flags, data or model: "
                "give the same command, or drop --resume to start again\n", a->state_path);
        return 1;
    }
    if (rc != GPT3_OK) return fail(a->state_path, rc);
    uint64_t n = (uint64_t)train->count, B = (uint64_t)a->batch, steps_per_epoch = (n + B - 1) / B;
    if (c[SAVED_EPOCH] < 1 || c[SAVED_EPOCH] > (uint64_t)a->epochs + 1 || c[SAVED_FROM] >= n || c[SAVED_FROM] % B ||
        c[SAVED_STEP] != (c[SAVED_EPOCH] - 1) * steps_per_epoch + c[SAVED_FROM] / B ||
        c[SAVED_BEST_EPOCH] >= c[SAVED_EPOCH] || c[SAVED_WAITED] >= c[SAVED_EPOCH])
        return fail(a->state_path, GPT3_ERR_CORRUPT); /* where it stands is not a place in this run */
    p->step = (int)c[SAVED_STEP];
    p->epoch = (int)c[SAVED_EPOCH];
    p->from = (int)c[SAVED_FROM];
    p->best_epoch = (int)c[SAVED_BEST_EPOCH];
    p->waited = (int)c[SAVED_WAITED];
    p->dropout_seed = c[SAVED_DROPOUT_SEED];
    p->best_metric = bits_double(c[SAVED_BEST_METRIC]);
    p->loss_sum = bits_double(c[SAVED_LOSS_SUM]);
    p->saved = p->step;
    report_keep(a->report_path, c[SAVED_REPORT_BYTES]);
    if (!a->quiet)
        fprintf(stderr, "resuming %s: epoch %d, step %d; the best dev epoch so far: %d\n", a->state_path, p->epoch,
                p->step, p->best_epoch);
    return 0;
}

static void shuffle(int *order, int n, GPT3Rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(gpt3_rng_u32(rng) % (uint32_t)(i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* A stop asked for, in a run that can be saved: Ctrl-C (or SIGTERM), or
   --stop-after's step reached. */
static int stop_asked(const FinetuneArgs *a, const Progress *p) {
    return a->state_path && (interrupted || (a->stop_after > 0 && p->step >= a->stop_after));
}

/* While a run that can be saved trains (on 1), Ctrl-C and SIGTERM ask for
   a stop; then (on 0) the handlers are those before. */
static void catch_stops(const FinetuneArgs *a, int on) {
    static void (*old_int)(int), (*old_term)(int);
    if (!a->state_path) return;
    if (on) {
        old_int = signal(SIGINT, on_interrupt);
        old_term = signal(SIGTERM, on_interrupt);
    } else {
        signal(SIGINT, old_int);
        signal(SIGTERM, old_term);
    }
}

/* The end of an epoch: the dev score, and the snapshot when it is the best. */
static int score_epoch(GPT3 *m, const FinetuneArgs *a, Dataset *train, Dataset *dev, GPT3Snapshot *best, Progress *p,
                       int steps_per_epoch, double seconds) {
    GPT3Report r;
    double loss;
    memset(&r, 0, sizeof(r));
    int rc = evaluate_task(m, dev, a->task, a->batch, &r, (const char *const *)train->labels, &loss);
    if (rc != GPT3_OK) return rc;
    double metric = task_metric(a->task, &r, loss);
    char title[128];
    snprintf(title, sizeof(title), "dev, epoch %d (train loss %.4f, %.1f s)%s", p->epoch,
             p->loss_sum / steps_per_epoch, seconds, metric > p->best_metric ? ": best so far" : "");
    show_report(a, title, a->task, &r, loss, train);
    gpt3_report_free(&r);
    if (metric > p->best_metric) {
        p->best_metric = metric;
        p->best_epoch = p->epoch;
        p->waited = 0;
        return gpt3_snapshot_take(m, best); /* the copies exist: it cannot fail here */
    }
    if (++p->waited >= a->patience && !a->quiet) fprintf(stderr, "no better for %d epochs: stopping early\n", p->waited);
    return GPT3_OK;
}

/* Step 4, from where *p stands: each epoch a shuffle, steps, the dev
   score. GPT3_OK at the end (the last epoch, or patience run out),
   RUN_STOPPED when a stop was asked for (saved), STEP_NOT_FINITE (said),
   or an error, *failed saying what about (NULL: said). */
enum { RUN_STOPPED = -2 };
static int train_epochs(GPT3 *m, const FinetuneArgs *a, Dataset *train, Dataset *dev, GPT3Snapshot *best,
                        Progress *p, const char **failed) {
    int task = a->task, B = a->batch, maxT = m->config.max_seq_len, n = train->count, rc = GPT3_OK;
    int steps_per_epoch = (n + B - 1) / B, total = a->epochs * steps_per_epoch;
    int *order = (int *)malloc((size_t)n * sizeof(int)), *inputs = (int *)malloc((size_t)B * maxT * sizeof(int));
    int *lengths = (int *)malloc((size_t)B * sizeof(int)), *labels = (int *)malloc((size_t)B * maxT * sizeof(int));
    Augmenter aug;
    Dataset copies = {0};
    GPT3Rng rng;
    memset(&aug, 0, sizeof(aug));
    if (!order || !inputs || !lengths || !labels) rc = GPT3_ERR_NOMEM;
    if (rc == GPT3_OK && a->augment > 0.0f && (augmenter_init(&aug, train, task, a->augment, maxT - a->prompt_tuning) ||
                                               !(copies.ex = (Example *)calloc((size_t)B, sizeof(Example)))))
        rc = GPT3_ERR_NOMEM;
    if (rc != GPT3_OK) *failed = "fine-tuning";
    copies.count = copies.capacity = copies.ex ? B : 0;
    gpt3_rng_seed(&rng, (uint64_t)a->seed);
    for (int i = 0; rc == GPT3_OK && i < n; i++) order[i] = i;
    for (int e = 1; rc == GPT3_OK && e < p->epoch; e++) shuffle(order, n, &rng); /* the epochs done */
    while (rc == GPT3_OK && p->epoch <= a->epochs && p->waited < a->patience) {
        shuffle(order, n, &rng);
        double t0 = now_seconds();
        for (; p->from < n && !stop_asked(a, p); p->from += B, p->step++) {
            int b_count = n - p->from < B ? n - p->from : B;
            int T = a->augment > 0.0f
                        ? augmented_batch(&aug, train, order, p->from, b_count, (uint64_t)a->seed, p->epoch, &copies,
                                          inputs, lengths, labels)
                        : make_batch(train, order, p->from, b_count, task, inputs, lengths, labels);
            if (T < 0) { rc = GPT3_ERR_NOMEM; *failed = "data augmentation"; break; }
            const float *soft = NULL;
            if (a->teacher && (rc = teacher_logits(a->teacher, task, inputs, lengths, b_count, T, &soft)) != GPT3_OK) {
                *failed = "the teacher's forward";
                break;
            }
            gpt3_set_distillation(m, soft, a->distill_temperature, a->distill_alpha);
            m->training = 1; /* dropout on (evaluation turned it off) */
            Optimizer opt = {0.9f, 0.95f, 1e-8f, a->weight_decay, 1.0f};
            float lr = gpt3_lr_schedule(p->step, a->lr, total / 10 + 1, total), loss_b, norm;
            rc = optimizer_step(m, task != TASK_GENERATE, inputs, lengths, labels, b_count, T, &opt, lr, p->step + 1,
                                &loss_b, &norm);
            if (rc == STEP_NOT_FINITE) {
                fprintf(stderr, "demo finetune: the %s is not finite at step %d: stopped; try a lower --lr\n",
                        isfinite(loss_b) ? "gradient norm" : "loss", p->step + 1);
                break;
            }
            if (rc != GPT3_OK) { *failed = "fine-tuning step"; break; }
            p->loss_sum += loss_b;
            if (!a->quiet && stderr_is_terminal()) /* a live line; the epoch's report follows it */
                fprintf(stderr, "\repoch %d/%d: %d of %d examples, train loss %.4f   ", p->epoch, a->epochs,
                        p->from + b_count, n, p->loss_sum / (p->from / B + 1));
        }
        gpt3_set_distillation(m, NULL, 1.0f, 0.0f);
        if (!a->quiet && stderr_is_terminal() && p->from < n) fputc('\n', stderr); /* after the live line */
        if (rc != GPT3_OK) break;
        if (p->from >= n) { /* the epoch's end */
            if ((rc = score_epoch(m, a, train, dev, best, p, steps_per_epoch, now_seconds() - t0)) != GPT3_OK) {
                *failed = "the dev set's evaluation";
                break;
            }
            p->epoch++;
            p->from = 0;
            p->loss_sum = 0.0;
        }
        p->dropout_seed = m->dropout_seed;
        if (a->state_path && save_progress(m, a, best, p)) {
            rc = GPT3_ERR_WRITE;
            *failed = NULL;
        } else if (p->epoch <= a->epochs && p->waited < a->patience && stop_asked(a, p)) {
            rc = RUN_STOPPED; /* at an epoch's end, or within one */
        }
    }
    free(order); free(inputs); free(lengths); free(labels);
    dataset_free(&copies, 0);
    augmenter_free(&aug);
    return rc;
}

/* Steps 2 to 5 for one task: 0, and *score the test metric; 1 if it
   failed (said); RUN_STOPPED when stopped and saved, to --resume (130 if
   by Ctrl-C or SIGTERM). *attacked gets the test accuracy under attack
   (classify), *seconds the training time. A step that is not finite stops
   the training (said), and the best epoch's model is tested as usual. */
static int run_finetune(GPT3 *m, const FinetuneArgs *a, Dataset *train, Dataset *dev, Dataset *test,
                        double *score, double *attacked, double *seconds) {
    int task = a->task, rc = GPT3_OK;
    if (set_up(m, a, train)) return 1;
    const char *const *tags = (const char *const *)train->labels;
    const char *failed = "fine-tuning"; /* what the error is about (NULL: said) */
    GPT3Report r;
    GPT3Snapshot best = {{0}, {0}};
    Progress p = {0, 1, 0, 0, 0, (uint64_t)a->seed, 0.0, 0.0, -1};
    memset(&r, 0, sizeof(r));
    double loss = 0.0, t_start = now_seconds();
    if (a->resume) {
        if (load_progress(m, a, train, &best, &p)) {
            gpt3_snapshot_free(&best);
            return 1;
        }
    } else if ((rc = evaluate_task(m, dev, task, a->batch, &r, tags, &loss)) != GPT3_OK) {
        failed = "the dev set's evaluation";
    } else {
        p.best_metric = task_metric(task, &r, loss);
        show_report(a, "dev, before fine-tuning", task, &r, loss, train);
        rc = gpt3_snapshot_take(m, &best);
    }
    gpt3_report_free(&r);
    gpt3_set_training(m, 1, a->dropout, p.dropout_seed);
    catch_stops(a, 1);
    if (rc == GPT3_OK) rc = train_epochs(m, a, train, dev, &best, &p, &failed);
    catch_stops(a, 0);
    *seconds = now_seconds() - t_start;
    if (rc == RUN_STOPPED) {
        fprintf(stderr, "%s at step %d (epoch %d): saved in %s; continue with the same command and --resume\n",
                interrupted ? "interrupted" : "stopped as asked", p.step, p.epoch, a->state_path);
        gpt3_snapshot_free(&best);
        return interrupted ? 130 : RUN_STOPPED;
    }
    /* 5. test the best epoch's model */
    *attacked = -1.0;
    if (rc == GPT3_OK || rc == STEP_NOT_FINITE) {
        gpt3_snapshot_restore(m, &best); /* the copies of this set-up, made before training */
        if ((rc = evaluate_task(m, dev, task, a->batch, &r, tags, &loss)) != GPT3_OK) failed = "the dev set's evaluation";
        else if (!a->quiet)
            fprintf(stderr, "\nrestored the best dev epoch (%d of %d run; 0: before training): dev score %.6f, as it was %.6f\n",
                    p.best_epoch, p.epoch - 1, task_metric(task, &r, loss), p.best_metric);
        gpt3_report_free(&r);
    }
    if (rc == GPT3_OK && (rc = evaluate_task(m, test, task, a->batch, &r, tags, &loss)) != GPT3_OK)
        failed = "the test set's evaluation";
    if (rc == GPT3_OK) {
        *score = task_metric(task, &r, loss);
        show_report(a, "test, the best dev epoch's model", task, &r, loss, train);
    }
    if (rc == GPT3_OK && task == TASK_CLASSIFY && a->attack_epsilon > 0.0f) { /* the robustness figure */
        char line[256];
        if ((rc = attacked_accuracy(m, test, a->batch, a->attack_epsilon, attacked)) != GPT3_OK) failed = "the attack";
        snprintf(line, sizeof(line), "robustness: test accuracy %.4f, %.4f under an FGM attack of epsilon %g "
                 "(each example's token embeddings moved by epsilon, up its loss's gradient)\n",
                 r.accuracy, *attacked, a->attack_epsilon);
        if (rc == GPT3_OK && !a->quiet) fprintf(stderr, "%s", line);
        if (rc == GPT3_OK) append_report(a->report_path, "robustness", line);
    }
    if (rc != GPT3_OK && failed) fail(failed, rc);
    gpt3_report_free(&r);
    gpt3_snapshot_free(&best);
    return rc != GPT3_OK;
}

static int load_task_data(int task, const char *path, GPT3Tokenizer *tok, Dataset *d, int is_train, int maxT) {
    int rc = task == TASK_NER ? load_conll(path, tok, d, is_train, maxT) : load_tsv(path, task, tok, d, is_train, maxT);
    if (rc == 0 && d->cut)
        fprintf(stderr, "note: %s: %d of %d examples are longer than the model's context (%d tokens): cut to fit\n",
                path, d->cut, d->count, maxT);
    return rc;
}

/* The training file's labels must give the head something to learn: two
   classes at least, or an entity tag (B-/I-) among the tags. */
static int labels_learnable(int task, const Dataset *train, const char *path) {
    for (int k = 0; k < train->n_labels; k++)
        if (strlen(train->labels[k]) > 256) {
            fprintf(stderr, "demo finetune: %s: a label of %zu bytes: at most 256, please\n", path,
                    strlen(train->labels[k]));
            return 0;
        }
    if (task == TASK_CLASSIFY && train->n_labels < 2) {
        fprintf(stderr, "demo finetune: %s: every example has the label '%s': a classifier needs two labels at least\n",
                path, train->n_labels ? train->labels[0] : "");
        return 0;
    }
    for (int k = 0; task == TASK_NER && k < train->n_labels; k++)
        if (strcmp(train->labels[k], "O") != 0) return 1;
    if (task == TASK_NER) {
        fprintf(stderr, "demo finetune: %s: every tag is O: there is no entity (B-TYPE, I-TYPE) to learn\n", path);
        return 0;
    }
    return 1;
}

/* One file split into train / dev / test (80 / 10 / 10) by a seeded shuffle. */
static void split_dataset(Dataset *all, Dataset *train, Dataset *dev, Dataset *test, int seed) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, (uint64_t)seed);
    for (int i = all->count - 1; i > 0; i--) {
        int j = (int)(gpt3_rng_u32(&rng) % (uint32_t)(i + 1));
        Example t = all->ex[i];
        all->ex[i] = all->ex[j];
        all->ex[j] = t;
    }
    Dataset *parts[3] = {train, dev, test};
    int cut[4] = {0, all->count * 8 / 10, all->count * 9 / 10, all->count};
    for (int k = 0; k < 3; k++) {
        parts[k]->labels = all->labels;
        parts[k]->n_labels = all->n_labels;
        for (int i = cut[k]; i < cut[k + 1]; i++) {
            Example *e = new_example(parts[k]);
            if (e) *e = all->ex[i];
        }
    }
    free(all->ex);
    all->ex = NULL;
    all->count = all->capacity = 0;
    all->labels = NULL; /* train owns them now */
    all->n_labels = 0;
}

static int parse_trainable(const char *text, int *trainable) {
    if (strcmp(text, "all") == 0) { *trainable = -1; return 1; }
    if (strcmp(text, "head") == 0) { *trainable = 0; return 1; }
    if (strncmp(text, "top:", 4) == 0) {
        char *end;
        long k = strtol(text + 4, &end, 10);
        if (*end == 0 && k >= 1 && k < 100000) { *trainable = (int)k; return 1; }
    }
    fprintf(stderr, "demo finetune: --trainable must be all, head or top:K (got '%s')\n", text);
    return 0;
}

/* Load the base (step 1): a checkpoint, or a preset initialised at random. */
static int open_base(GPT3 *m, const char *model, const char *init, int vocab_size, int context, int seed) {
    if (init) {
        GPT3Config cfg;
        if (gpt3_preset(&cfg, init) != GPT3_OK) {
            fprintf(stderr, "demo finetune: --init: no preset '%s'; presets:", init);
            for (int i = 0; gpt3_preset_name(i); i++) fprintf(stderr, " %s", gpt3_preset_name(i));
            fprintf(stderr, "\n");
            return 1;
        }
        cfg.vocab_size = vocab_size;
        if (context > 0) cfg.max_seq_len = context;
        int rc = gpt3_init(m, &cfg, (uint64_t)seed);
        return rc != GPT3_OK ? fail("init", rc) : 0;
    }
    int rc = gpt3_load(m, model);
    if (rc != GPT3_OK) return fail(model, rc);
    if (m->config.vocab_size != vocab_size) {
        fprintf(stderr, "demo finetune: %s has %d tokens but its tokenizer %d: give the model's --encoder/--bpe\n",
                model, m->config.vocab_size, vocab_size);
        gpt3_free(m);
        return 1;
    }
    return 0;
}

static const char *task_names[3] = {"classify", "ner", "generate"};

/* A teacher must see every example the student does (a context as long)
   and give logits of the student's shape (the head the task makes). */
static int teacher_fits(const GPT3 *teacher, const GPT3 *student, int task, const Dataset *train,
                        const char *path) {
    int kind = task == TASK_NER ? GPT3_HEAD_TAGS : train->n_labels == 2 ? GPT3_HEAD_BINARY : GPT3_HEAD_CLASSES;
    int classes = kind == GPT3_HEAD_BINARY ? 1 : train->n_labels;
    if (teacher->config.max_seq_len < student->config.max_seq_len) {
        fprintf(stderr, "demo finetune: the teacher %s has a context of %d, shorter than the student's %d: "
                "give the student --context %d\n", path, teacher->config.max_seq_len, student->config.max_seq_len,
                teacher->config.max_seq_len);
        return 0;
    }
    if (task != TASK_GENERATE && (teacher->head->kind != kind || teacher->head->num_classes != classes)) {
        fprintf(stderr, "demo finetune: the teacher's head (%s.head: %d logits) does not fit this task's "
                "(%d logits): a teacher must be fine-tuned on the same labels\n", path,
                teacher->head->num_classes, classes);
        return 0;
    }
    return 1;
}

typedef struct {
    const char *train, *dev, *test, *data, *model, *init, *encoder, *bpe, *out, *teacher, *trainable;
    const char *prompt_init, *adversarial;
    const char *compare;       /* built-in examples: the task(s) to compare strategies on */
    int task, context, split_seed;
    FinetuneArgs a;
    double attacked, seconds;  /* the run's test accuracy under attack, training time */
    size_t trainable_count;    /* and its trainable parameters                     */
} FinetuneFlags;

/* --prompt-init: "random" (no tokens), "vocab" (tokens drawn from the
   vocabulary, the paper's sampled-vocabulary start) or a text, whose
   tokens start the vectors (repeated to fill them). */
static int prompt_tokens(FinetuneFlags *f, GPT3Tokenizer *tok, int V, int **ids) {
    int n = f->a.prompt_tuning;
    size_t n_ids = 0;
    *ids = NULL;
    if (strcmp(f->prompt_init, "random") == 0) return 0;
    if (strcmp(f->prompt_init, "vocab") == 0) {
        GPT3Rng rng;
        gpt3_rng_seed(&rng, (uint64_t)f->a.seed + 7);
        *ids = (int *)malloc((size_t)n * sizeof(int));
        for (int i = 0; *ids && i < n; i++) (*ids)[i] = (int)(gpt3_rng_u32(&rng) % (uint32_t)V);
        n_ids = (size_t)n;
    } else if (gpt3_encode(tok, f->prompt_init, strlen(f->prompt_init), ids, &n_ids) != GPT3_OK) {
        free(*ids);
        *ids = NULL;
    }
    if (!*ids) return fail("--prompt-init", GPT3_ERR_NOMEM);
    if (n_ids == 0 || n_ids > (size_t)n) {
        fprintf(stderr, "demo finetune: --prompt-init \"%s\" is %zu tokens: give a text of 1 to %d tokens "
                "(--prompt-tuning %d), or random, or vocab\n", f->prompt_init, n_ids, n, n);
        return 1;
    }
    f->a.prompt_init = *ids;
    f->a.n_prompt_init = (int)n_ids;
    return 0;
}

/* The report's path; the file is started (emptied) only once the data have
   loaded, so that a run refused for bad input leaves no file behind. */
static void report_path_for(FinetuneFlags *f, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s.report.txt", f->out ? f->out : ".", task_names[f->task]);
    f->a.report_path = buf;
}

static void report_start(const FinetuneFlags *f) {
    make_directory(f->out ? f->out : ".");
    FILE *clear = fopen(f->a.report_path, "w");
    if (!clear || fclose(clear) != 0)
        fprintf(stderr, "demo finetune: cannot write %s: %s\n", f->a.report_path, strerror(errno));
}

/* Are paths a and b one file (both existing)? */
static int same_file(const char *a, const char *b) {
#ifdef HAVE_POSIX
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
#else
    return file_exists(a) && strcmp(a, b) == 0;
#endif
}

/* Would the fine-tuned model, saved in --out, replace a checkpoint the run
   reads (--model, --teacher), or a pretraining run's? That one would be
   lost: refused (said). A fine-tuned model of an earlier run is replaced. */
static int replaces_other_model(const FinetuneFlags *f) {
    char saved[1024], state[1100];
    snprintf(saved, sizeof(saved), "%s/model.ckpt", f->out ? f->out : ".");
    snprintf(state, sizeof(state), "%s.state", saved);
    const char *inputs[2] = {f->init ? NULL : f->model, f->teacher}, *flags[2] = {"--model", "--teacher"};
    for (int k = 0; f->out && k < 2; k++) {
        if (!inputs[k] || !same_file(inputs[k], saved)) continue;
        fprintf(stderr, "demo finetune: --out %s would replace %s (%s) with the fine-tuned model: give another --out\n",
                f->out, inputs[k], flags[k]);
        return 1;
    }
    if (f->out && file_exists(state)) {
        fprintf(stderr, "demo finetune: --out %s holds a pretraining run (%s and its .state), which the fine-tuned "
                "model would replace: give another --out\n", f->out, saved);
        return 1;
    }
    return 0;
}

/* Steps 1-5 from flags; *score gets the test metric. */
static int finetune_files(FinetuneFlags *f, double *score) {
    GPT3Tokenizer tok;
    GPT3 m, teacher;
    Dataset train = {0}, dev = {0}, test = {0}, all = {0};
    int status = 1, lock = -1, stopped = 0;
    if (replaces_other_model(f)) return 1;
    if (f->a.resume && !file_exists(f->a.state_path)) {
        fprintf(stderr, "demo finetune: --resume: no run to continue in %s: %s is saved at each epoch's end (and "
                "removed once the fine-tuned model is saved); fine-tune without --resume\n", f->out, f->a.state_path);
        return 1;
    }
    if (open_tokenizer(&tok, f->encoder, f->bpe, f->init ? NULL : f->model)) return 1;
    memset(&teacher, 0, sizeof(teacher));
    if (!f->a.quiet) fprintf(stderr, "1. pretrained model: %s\n", f->init ? "none: a random init" : f->model);
    if (open_base(&m, f->model, f->init, tok.vocab_size, f->context, f->a.seed)) { gpt3_tokenizer_free(&tok); return 1; }
    int maxT = m.config.max_seq_len - f->a.prompt_tuning; /* a soft prompt takes the first positions */
    int *prompt_init = NULL;
    if (f->a.prompt_tuning >= m.config.max_seq_len) {
        fprintf(stderr, "demo finetune: --prompt-tuning %d leaves no room in the model's context of %d: use at most %d\n",
                f->a.prompt_tuning, m.config.max_seq_len, m.config.max_seq_len / 2);
    } else if (f->a.prompt_tuning && prompt_tokens(f, &tok, m.config.vocab_size, &prompt_init)) {
        /* said */
    } else if (f->a.trainable > m.config.num_layers) {
        fprintf(stderr, "demo finetune: --trainable top:%d, but the model has %d blocks: use top:%d or all\n",
                f->a.trainable, m.config.num_layers, m.config.num_layers);
    } else if (f->a.lora_rank > m.config.channels) {
        fprintf(stderr, "demo finetune: --lora-rank %d is larger than the model's %d channels (C): use at most %d\n",
                f->a.lora_rank, m.config.channels, m.config.channels);
    } else if (f->data) {
        if (load_task_data(f->task, f->data, &tok, &all, 1, maxT) == 0 && labels_learnable(f->task, &all, f->data)) {
            split_dataset(&all, &train, &dev, &test, f->split_seed);
            status = train.count && dev.count && test.count ? 0 : (fprintf(stderr, "demo finetune: %s is too small to split\n", f->data), 1);
        }
    } else if (!f->train || !f->dev || !f->test) {
        fprintf(stderr, "demo finetune: give --train, --dev and --test files, or --data FILE to split (none: the built-in examples)\n");
    } else if (load_task_data(f->task, f->train, &tok, &train, 1, maxT) == 0 && labels_learnable(f->task, &train, f->train)) {
        dev.labels = test.labels = train.labels;
        dev.n_labels = test.n_labels = train.n_labels;
        status = load_task_data(f->task, f->dev, &tok, &dev, 0, maxT) || load_task_data(f->task, f->test, &tok, &test, 0, maxT);
    }
    if (status == 0 && f->teacher) { /* a teacher: the same tokenizer, and its head beside it */
        char head_path[1024];
        snprintf(head_path, sizeof(head_path), "%s.head", f->teacher);
        int rc = gpt3_load(&teacher, f->teacher);
        if (rc == GPT3_OK && teacher.config.vocab_size != m.config.vocab_size) rc = GPT3_ERR_MISMATCH;
        if (rc != GPT3_OK) fail(f->teacher, rc);
        if (rc == GPT3_OK && f->task != TASK_GENERATE && (rc = gpt3_head_load(&teacher, head_path)) != GPT3_OK) {
            fail(head_path, rc);
            fprintf(stderr, "  a teacher is a fine-tuned model: --teacher OUT/model.ckpt with OUT/model.ckpt.head beside it\n");
        }
        status = rc != GPT3_OK || !teacher_fits(&teacher, &m, f->task, &train, f->teacher);
        f->a.teacher = &teacher;
    }
    if (status == 0 && (double)f->a.epochs * ((train.count + f->a.batch - 1) / f->a.batch) > 1e9) {
        fprintf(stderr, "demo finetune: --epochs %d of %d examples is more than 1e9 steps\n", f->a.epochs, train.count);
        status = 1;
    }
    if (status == 0) {
        if (!f->a.quiet) fprintf(stderr, "data: %d train, %d dev, %d test %s; %d %s\n", train.count, dev.count, test.count,
                f->task == TASK_NER ? "sentences" : "examples", train.n_labels,
                f->task == TASK_CLASSIFY ? "classes" : f->task == TASK_NER ? "tags" : "(labels unused)");
        make_directory(f->out ? f->out : ".");
        lock = f->out ? lock_folder("finetune", f->out) : -1;
        status = f->out && lock < 0;
    }
    if (status == 0) {
        if (!f->a.resume) report_start(f);
        f->a.settings = finetune_settings(&f->a, &train, &dev);
        status = run_finetune(&m, &f->a, &train, &dev, &test, score, &f->attacked, &f->seconds);
        f->trainable_count = gpt3_trainable_parameters(&m);
        if (status == RUN_STOPPED) stopped = 1, status = 0;
    }
    if (status == 0 && !stopped && f->out) { /* the fine-tuned model: adapters merged, a normal checkpoint */
        char path[1024], head_path[1100];
        snprintf(path, sizeof(path), "%s/model.ckpt", f->out);
        snprintf(head_path, sizeof(head_path), "%s.head", path);
        int rc = m.lora ? gpt3_lora_merge(&m) : GPT3_OK;
        if (rc == GPT3_OK) rc = gpt3_save(&m, path);
        if (rc != GPT3_OK) status = fail(path, rc);
        else if ((m.head || m.prompt) && (rc = gpt3_head_save(&m, head_path)) != GPT3_OK) status = fail(head_path, rc);
        else if ((rc = save_tokenizer_beside(&tok, f->out)) != GPT3_OK) status = fail("the tokenizer's files", rc);
        if (status == 0 && f->a.state_path) remove(f->a.state_path); /* the run is over: nothing to resume */
        if (status == 0 && !f->a.quiet)
            fprintf(stderr, "saved %s%s%s; reports in %s\n", path,
                    m.head && m.prompt ? ", model.ckpt.head (the head and the soft prompt)" : m.head ? ", model.ckpt.head"
                    : m.prompt ? ", model.ckpt.head (the soft prompt)" : "",
                    tok.is_bytes ? "" : ", encoder.json, vocab.bpe", f->a.report_path);
    }
    dataset_free(&all, 1);
    dataset_free(&train, 1);
    dev.labels = test.labels = NULL;
    dev.n_labels = test.n_labels = 0;
    dataset_free(&dev, 0);
    dataset_free(&test, 0);
    gpt3_free(&teacher);
    gpt3_free(&m);
    gpt3_tokenizer_free(&tok);
    free(prompt_init);
    unlock_folder(lock);
    return status;
}

/* Step 5, visible: each fine-tuned model of the built-in examples, loaded
   from its folder as an application would (gpt3_load_finetuned), on
   sentences it has never seen. */
static void predict_new_samples(const char *ckpt, int task) {
    static const char *texts[3][2] = {
        {"What a lovely concert, I enjoyed every minute!", "The new Lumio tent seemed fine at first, but it was awful in the end."},
        {"Orla Venn played the cello with the city orchestra.", "Researchers at the Ostler Institute froze the yeast cells."},
        {"Capital city of Quaria?", "Tell me the capital of Drisland."}};
    static const char *sentence[] = {"Orla", "Venn", "flew", "from", "Drennick", "to", "meet", "Wavecrest", "Radio", "."};
    GPT3 m;
    GPT3Tokenizer tok;
    int rc = gpt3_load_finetuned(&m, &tok, ckpt), which = strstr(ckpt, "topic") ? 1 : 0;
    if (rc != GPT3_OK) { fail(ckpt, rc); return; }
    printf("%s:\n", ckpt);
    if (task == TASK_CLASSIFY) {
        for (int i = 0; i < 2; i++) {
            float probs[MAX_LABELS];
            if (gpt3_classify(&m, &tok, texts[which][i], strlen(texts[which][i]), probs, NULL) != GPT3_OK) continue;
            int best = argmax(probs, gpt3_head_outputs(&m));
            printf("  %-10s %.3f  %s\n", m.head->names[best], probs[best], texts[which][i]);
        }
    } else if (task == TASK_NER) {
        int n = COUNT(sentence), tags[COUNT(sentence)];
        if (gpt3_tag_words(&m, &tok, sentence, n, tags, NULL) == GPT3_OK) {
            printf(" ");
            for (int w = 0; w < n; w++) printf(" %s/%s", sentence[w], tags[w] >= 0 ? m.head->names[tags[w]] : "-");
            printf("\n");
        }
    } else {
        GPT3Sampler sampler;
        for (int i = 0; i < 2 && gpt3_sampler_init(&sampler, m.config.vocab_size, 0.0f, 0, 1.0f, 1) == GPT3_OK; i++) {
            printf("  ");
            generate(&m, &tok, texts[2][i], 8, &sampler, 1, 1, 1);
            printf("\n");
            gpt3_sampler_free(&sampler);
        }
    }
    gpt3_free(&m);
    gpt3_tokenizer_free(&tok);
}

/* The strategies of the comparison, on the same data and seed: what trains,
   and the two techniques added to full fine-tuning. */
typedef struct { const char *name; int trainable, lora_rank, prompt_tuning, adversarial; float lr_scale, augment; } Strategy;
static const Strategy strategies[] = {
    {"full fine-tuning", -1, 0, 0, 0, 1.0f, 0.0f},
    {"head only", 0, 0, 0, 0, 1.0f, 0.0f},
    {"top:2 blocks", 2, 0, 0, 0, 1.0f, 0.0f},
    {"LoRA, rank 4", 0, 4, 0, 0, 1.0f, 0.0f},
    {"prompt tuning, 16 (lr x10)", 0, 0, 16, 0, 10.0f, 0.0f},
    {"full + adversarial (FGM)", -1, 0, 0, 1, 1.0f, 0.0f},
    {"full + augmentation 0.1", -1, 0, 0, 0, 1.0f, 0.1f},
};

/* Every strategy on one built-in task (name: its files in data/finetune/);
   the table on stdout. Returns 0, or 1 if a run failed. */
static int compare_strategies(const FinetuneFlags *base, const char *name, int task) {
    char train[256], dev[256], test[256], out[256], report[1024];
    const char *ext = task == TASK_NER ? "conll" : "tsv";
    const char *metric = task == TASK_CLASSIFY ? "macro F1" : task == TASK_NER ? "entity F1" : "perplexity";
    double score[COUNT(strategies)], attacked[COUNT(strategies)], seconds[COUNT(strategies)];
    size_t params[COUNT(strategies)];
    fprintf(stderr, "\n==== comparing the strategies on %s (each a few seconds) ====\n", name);
    for (int i = 0; i < COUNT(strategies); i++) {
        const Strategy *s = &strategies[i];
        FinetuneFlags f = *base;
        snprintf(train, sizeof(train), "data/finetune/%s.train.%s", name, ext);
        snprintf(dev, sizeof(dev), "data/finetune/%s.dev.%s", name, ext);
        snprintf(test, sizeof(test), "data/finetune/%s.test.%s", name, ext);
        snprintf(out, sizeof(out), "demo_out/finetune/compare/%s-%d", name, i + 1);
        make_directory("demo_out/finetune/compare");
        f.train = train; f.dev = dev; f.test = test; f.out = out; f.model = "demo_out/model.ckpt";
        f.task = f.a.task = task;
        if (task == TASK_GENERATE && s->trainable == 0 && !s->lora_rank && !s->prompt_tuning) {
            params[i] = 0; /* the LM's head is the tied embedding: nothing to train alone */
            score[i] = NAN;
            continue;
        }
        f.a.trainable = s->trainable;
        f.a.lora_rank = s->lora_rank;
        f.a.prompt_tuning = s->prompt_tuning;
        f.prompt_init = "vocab";
        f.a.lr *= s->lr_scale;
        f.a.adv_steps = s->adversarial;
        f.a.augment = s->augment;
        f.a.quiet = 1;
        report_path_for(&f, report, sizeof(report));
        fprintf(stderr, "%d. %s: ", i + 1, s->name);
        if (finetune_files(&f, &score[i])) return 1;
        attacked[i] = f.attacked;
        seconds[i] = f.seconds;
        params[i] = f.trainable_count;
    }
    printf("\nfine-tuning strategies on %s (data/finetune/%s.*, seed %d, the main job's small model; "
           "reports in demo_out/finetune/compare/)\n", name, name, base->a.seed);
    printf("%-28s %12s %11s %17s %8s\n", "strategy", "trainable", metric,
           task == TASK_CLASSIFY ? "acc, FGM attack" : "", "seconds");
    for (int i = 0; i < COUNT(strategies); i++) {
        if (isnan(score[i])) {
            printf("%-28s %12s %11s (the LM's head is the tied embedding)\n", strategies[i].name, "-", "-");
            continue;
        }
        printf("%-28s %12zu %11.4f ", strategies[i].name, params[i], task == TASK_GENERATE ? exp(-score[i]) : score[i]);
        if (attacked[i] >= 0.0) printf("%17.4f", attacked[i]);
        else printf("%17s", "");
        printf(" %8.1f\n", seconds[i]);
    }
    if (task == TASK_CLASSIFY)
        printf("(acc, FGM attack: test accuracy with each example's embeddings moved by epsilon %g up its loss's "
               "gradient)\n", base->a.attack_epsilon);
    return 0;
}

/* The built-in examples: each task on the datasets in data/finetune/, from
   the main job's model, then a distillation of the topic classifier into a
   model a tenth of its size. */
static int finetune_builtin(FinetuneFlags *base) {
    const char *ckpt = "demo_out/model.ckpt";
    if (!file_exists(ckpt)) {
        fprintf(stderr, "no pretrained model at %s: training one first (the main job, ./demo)\n\n", ckpt);
        if (cmd_main_job() != 0) return 1;
    }
    struct { const char *name, *what; int task, trainable, lora; } runs[] = {
        {"sentiment", "binary classification, everything trains", TASK_CLASSIFY, -1, 0},
        {"topic", "4 classes, the model frozen, LoRA adapters (rank 4) and the head train", TASK_CLASSIFY, 0, 4},
        {"ner", "named entities (BIO tags), the top 2 blocks and the head train", TASK_NER, 2, 0},
        {"qa", "prompt -> completion, the LM loss on the completion only", TASK_GENERATE, -1, 0},
    };
    double scores[5];
    char train[256], dev[256], test[256], out[256], report[1024];
    for (int i = 0; i < 4; i++) {
        FinetuneFlags f = *base;
        const char *ext = runs[i].task == TASK_NER ? "conll" : "tsv";
        snprintf(train, sizeof(train), "data/finetune/%s.train.%s", runs[i].name, ext);
        snprintf(dev, sizeof(dev), "data/finetune/%s.dev.%s", runs[i].name, ext);
        snprintf(test, sizeof(test), "data/finetune/%s.test.%s", runs[i].name, ext);
        snprintf(out, sizeof(out), "demo_out/finetune/%s", runs[i].name);
        make_directory("demo_out/finetune");
        f.train = train; f.dev = dev; f.test = test; f.out = out; f.model = ckpt;
        f.task = f.a.task = runs[i].task;
        f.a.trainable = runs[i].trainable;
        f.a.lora_rank = runs[i].lora;
        report_path_for(&f, report, sizeof(report));
        fprintf(stderr, "\n==== %d. %s: %s ====\n", i + 1, runs[i].name, runs[i].what);
        if (finetune_files(&f, &scores[i])) return 1;
    }
    /* distillation: the topic classifier teaches a "tiny" model from scratch */
    FinetuneFlags f = *base;
    snprintf(train, sizeof(train), "data/finetune/topic.train.tsv");
    snprintf(dev, sizeof(dev), "data/finetune/topic.dev.tsv");
    snprintf(test, sizeof(test), "data/finetune/topic.test.tsv");
    f.train = train; f.dev = dev; f.test = test; f.out = "demo_out/finetune/student";
    f.model = ckpt; f.init = "tiny"; f.context = 128; f.encoder = "demo_out/encoder.json"; f.bpe = "demo_out/vocab.bpe";
    f.teacher = "demo_out/finetune/topic/model.ckpt";
    f.task = f.a.task = TASK_CLASSIFY;
    f.a.trainable = -1;
    f.a.lr = 3e-3f;
    f.a.distill_alpha = 0.7f;
    f.a.distill_temperature = 2.0f;
    report_path_for(&f, report, sizeof(report));
    fprintf(stderr, "\n==== 5. distillation: the topic classifier (\"mini\") teaches a \"tiny\" model from scratch ====\n");
    if (finetune_files(&f, &scores[4])) return 1;
    GPT3Config big = {0, 0, 0, 0, 0, 0}, small = {0, 0, 0, 0, 0, 0};
    gpt3_preset(&big, "mini");
    gpt3_preset(&small, "tiny");
    big.vocab_size = small.vocab_size = 512;
    small.max_seq_len = 128;
    fprintf(stderr, "\n==== summary (test set) ====\n"
            "sentiment  macro F1 %.4f\ntopic      macro F1 %.4f   (teacher, %zu parameters)\n"
            "student    macro F1 %.4f   (distilled, %zu parameters)\n"
            "ner        entity F1 %.4f\nqa         perplexity %.3f\nreports and models: demo_out/finetune/\n",
            scores[0], scores[1], gpt3_num_parameters(&big), scores[4], gpt3_num_parameters(&small), scores[2],
            exp(-scores[3]));
    printf("\n==== 5. the fine-tuned models on new sentences (loaded as an application would: gpt3_load_finetuned) ====\n");
    for (int i = 0; i < 4; i++) {
        snprintf(out, sizeof(out), "demo_out/finetune/%s/model.ckpt", runs[i].name);
        predict_new_samples(out, runs[i].task);
    }
    fflush(stdout);
    static const char *compared[4] = {"sentiment", "topic", "ner", "qa"};
    for (int i = 0; i < 4; i++) {
        int all = strcmp(base->compare, "all") == 0;
        if ((all || strcmp(base->compare, compared[i]) == 0) && compare_strategies(base, compared[i], runs[i].task))
            return 1;
    }
    return 0;
}

/* --adversarial fgm|pgd and its settings: refused without it, defaults
   filled in with it; the attack of the robustness figure. */
static int adversarial_flags(FinetuneFlags *f) {
    FinetuneArgs *a = &f->a;
    const char *c = "finetune";
    int fgm = f->adversarial && strcmp(f->adversarial, "fgm") == 0, pgd = f->adversarial && strcmp(f->adversarial, "pgd") == 0;
    if (f->adversarial && !fgm && !pgd) {
        fprintf(stderr, "demo finetune: --adversarial must be fgm or pgd (got '%s')\n", f->adversarial);
        return 0;
    }
    if (!f->adversarial && (a->adv_steps != UNSET || !isnan(a->adv_epsilon) || !isnan(a->adv_alpha))) {
        fprintf(stderr, "demo finetune: --adv-epsilon, --adv-steps and --adv-alpha are for --adversarial fgm|pgd\n");
        return 0;
    }
    if (fgm && (a->adv_steps != UNSET || !isnan(a->adv_alpha))) {
        fprintf(stderr, "demo finetune: FGM is one step of size epsilon: --adv-steps and --adv-alpha are for pgd\n");
        return 0;
    }
    if (!(isnan(a->adv_epsilon) || check_range(c, "adv-epsilon", a->adv_epsilon, 0, 1e6)) ||
        !(isnan(a->adv_alpha) || check_positive(c, "adv-alpha", a->adv_alpha, 1e6)) ||
        !(isnan(a->attack_epsilon) || check_range(c, "attack-epsilon", a->attack_epsilon, 0, 1e6)) ||
        !(a->adv_steps == UNSET || check_range(c, "adv-steps", a->adv_steps, 2, 100)))
        return 0;
    if (isnan(a->adv_epsilon)) a->adv_epsilon = 0.1f;
    a->adv_steps = pgd ? (a->adv_steps == UNSET ? 3 : a->adv_steps) : fgm;
    if (isnan(a->adv_alpha)) a->adv_alpha = pgd ? a->adv_epsilon / 2 : 0.0f;
    if (isnan(a->attack_epsilon)) a->attack_epsilon = f->adversarial ? a->adv_epsilon : 0.1f;
    return 1;
}

static int cmd_finetune(int argc, char **argv) {
    static const char *default_task = "classify", *default_model = "demo_out/model.ckpt";
    const char *task = default_task;
    static const char *default_trainable = "all", *default_prompt_init = "vocab", *default_compare = "sentiment";
    FinetuneFlags f = {.model = default_model, .trainable = default_trainable, .split_seed = 1,
                       .prompt_init = default_prompt_init, .compare = default_compare,
                       .a = {.epochs = 4, .batch = 16, .patience = 2, .seed = 1, .lr = 1e-3f,
                             .weight_decay = 0.01f, .dropout = 0.1f, .lora_alpha = UNSET_FLOAT,
                             .distill_alpha = UNSET_FLOAT, .distill_temperature = UNSET_FLOAT,
                             .adv_steps = UNSET, .adv_epsilon = UNSET_FLOAT, .adv_alpha = UNSET_FLOAT,
                             .attack_epsilon = UNSET_FLOAT}};
    Option opts[] = {
        {"task", OPT_STRING, &task, "classify (TSV label<TAB>text), ner (CoNLL), generate (TSV prompt<TAB>completion)"},
        {"train", OPT_STRING, &f.train, "training file"},
        {"dev", OPT_STRING, &f.dev, "dev file: scored every epoch, for early stopping"},
        {"test", OPT_STRING, &f.test, "test file: scored once at the end"},
        {"data", OPT_STRING, &f.data, "one file to split 80/10/10 instead of --train/--dev/--test"},
        {"split-seed", OPT_INT, &f.split_seed, "seed of that split"},
        {"model", OPT_STRING, &f.model, "the pretrained checkpoint (its tokenizer is the one beside it)"},
        {"init", OPT_STRING, &f.init, "start from a random preset instead (tiny, mini, ...)"},
        {"context", OPT_INT, &f.context, "with --init: the context length"},
        {"encoder", OPT_STRING, &f.encoder, "encoder.json (default: beside the model)"},
        {"bpe", OPT_STRING, &f.bpe, "vocab.bpe"},
        {"out", OPT_STRING, &f.out, "folder for the report and the fine-tuned model"},
        {"epochs", OPT_INT, &f.a.epochs, "epochs at most"},
        {"batch", OPT_INT, &f.a.batch, "examples per step"},
        {"lr", OPT_FLOAT, &f.a.lr, "peak learning rate (warmup 10%, cosine decay to 10%)"},
        {"weight-decay", OPT_FLOAT, &f.a.weight_decay, "AdamW weight decay"},
        {"dropout", OPT_FLOAT, &f.a.dropout, "dropout while training"},
        {"patience", OPT_INT, &f.a.patience, "epochs without a better dev score before stopping"},
        {"trainable", OPT_STRING, &f.trainable, "all, head, or top:K (the top K blocks and the head)"},
        {"lora-rank", OPT_INT, &f.a.lora_rank, "LoRA adapters of this rank (0: none)"},
        {"lora-alpha", OPT_FLOAT, &f.a.lora_alpha, "LoRA scale alpha, the update alpha/r B A (default 8)"},
        {"teacher", OPT_STRING, &f.teacher, "distil from this fine-tuned checkpoint (and its .head)"},
        {"distill-alpha", OPT_FLOAT, &f.a.distill_alpha, "weight of the teacher's soft targets (default 0.5)"},
        {"distill-temperature", OPT_FLOAT, &f.a.distill_temperature, "softening temperature tau (default 2)"},
        {"prompt-tuning", OPT_INT, &f.a.prompt_tuning, "learn a soft prompt of N vectors, the model frozen (0: none)"},
        {"prompt-init", OPT_STRING, &f.prompt_init, "its start: vocab (embeddings of random tokens), random, or a text"},
        {"adversarial", OPT_STRING, &f.adversarial, "adversarial training: fgm or pgd"},
        {"adv-epsilon", OPT_FLOAT, &f.a.adv_epsilon, "the perturbation's L2 norm, per example (default 0.1)"},
        {"adv-steps", OPT_INT, &f.a.adv_steps, "pgd's steps (default 3)"},
        {"adv-alpha", OPT_FLOAT, &f.a.adv_alpha, "pgd's step size (default epsilon / 2)"},
        {"attack-epsilon", OPT_FLOAT, &f.a.attack_epsilon, "classify: test accuracy under an FGM attack this strong "
                                                            "(default: --adv-epsilon, or 0.1; 0: none)"},
        {"augment", OPT_FLOAT, &f.a.augment, "data augmentation's strength P, 0 to 1 (0: none)"},
        {"compare", OPT_STRING, &f.compare, "built-in examples: compare the strategies on sentiment, topic, ner, qa, "
                                             "all or none"},
        {"seed", OPT_INT, &f.a.seed, "seed of the head, the order and dropout"},
        {"resume", OPT_SWITCH, &f.a.resume, "continue the run saved in --out (stopped, interrupted or killed)"},
        {"stop-after", OPT_INT, &f.a.stop_after, "stop (and save) after this step, to --resume later (0: no)"},
    };
    int rc = parse_flags("finetune", "Fine-tunes a pretrained GPT-3 on a task; with no data files, runs the built-in examples.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    f.task = -1;
    for (int k = 0; k < 3; k++) if (strcmp(task, task_names[k]) == 0) f.task = k;
    if (f.task < 0) { fprintf(stderr, "demo finetune: --task must be classify, ner or generate\n"); return 1; }
    f.a.task = f.task;
    if (!parse_trainable(f.trainable, &f.a.trainable)) return 1;
    int builtin = !f.train && !f.dev && !f.test && !f.data;
    const char *c = "finetune";
    if (!check_range(c, "epochs", f.a.epochs, 0, 1e6) || !check_range(c, "batch", f.a.batch, 1, 4096) ||
        !check_range(c, "dropout", f.a.dropout, 0, 0.9) || !check_range(c, "patience", f.a.patience, 1, 1e6) ||
        !check_range(c, "lora-rank", f.a.lora_rank, 0, 4096) || !check_range(c, "lr", f.a.lr, 0, 10) ||
        !check_range(c, "weight-decay", f.a.weight_decay, 0, 10) || !check_range(c, "context", f.context, 0, 1 << 24) ||
        !check_range(c, "prompt-tuning", f.a.prompt_tuning, 0, 1 << 20) || !check_range(c, "augment", f.a.augment, 0, 1) ||
        !check_range(c, "stop-after", f.a.stop_after, 0, 1e9) ||
        !(isnan(f.a.distill_alpha) || check_range(c, "distill-alpha", f.a.distill_alpha, 0, 1)) ||
        !(isnan(f.a.lora_alpha) || check_positive(c, "lora-alpha", f.a.lora_alpha, 1e6)) ||
        !(isnan(f.a.distill_temperature) || check_positive(c, "distill-temperature", f.a.distill_temperature, 1000)))
        return 1;
    if (!builtin && !f.teacher && (!isnan(f.a.distill_alpha) || !isnan(f.a.distill_temperature))) {
        fprintf(stderr, "demo finetune: --distill-alpha and --distill-temperature are for --teacher\n");
        return 1;
    }
    if (f.a.lora_rank == 0 && !isnan(f.a.lora_alpha)) {
        fprintf(stderr, "demo finetune: --lora-alpha is for --lora-rank (adapters of that rank)\n");
        return 1;
    }
    if (!adversarial_flags(&f)) return 1;
    if (f.a.prompt_tuning && (f.trainable != default_trainable || f.a.lora_rank)) {
        fprintf(stderr, "demo finetune: --prompt-tuning freezes the model: it trains the prompt (and the head) alone; "
                "drop --trainable and --lora-rank\n");
        return 1;
    }
    if (!f.a.prompt_tuning && f.prompt_init != default_prompt_init) {
        fprintf(stderr, "demo finetune: --prompt-init is for --prompt-tuning N (a soft prompt of N vectors)\n");
        return 1;
    }
    if (isnan(f.a.lora_alpha)) f.a.lora_alpha = 8.0f;
    if (isnan(f.a.distill_alpha)) f.a.distill_alpha = 0.5f;
    if (isnan(f.a.distill_temperature)) f.a.distill_temperature = 2.0f;

    if (f.a.trainable == 0 && f.a.lora_rank == 0 && !f.a.prompt_tuning && f.task == TASK_GENERATE) {
        fprintf(stderr, "demo finetune: with --task generate the head is the tied embedding: --trainable head trains nothing (use top:K or --lora-rank)\n");
        return 1;
    }
    const char *conflict = f.data && (f.train || f.dev || f.test) ? "--data and --train/--dev/--test: give one or the other"
                           : f.context && !f.init ? "--context is for --init (a checkpoint has its own context)"
                           : f.init && f.model != default_model ? "--model and --init: give one"
                           : NULL;
    if (!conflict && builtin && (task != default_task || f.out || f.init || f.teacher || f.encoder || f.bpe ||
                                 f.model != default_model || f.a.resume || f.a.stop_after))
        conflict = "with no data files it runs the built-in examples, which choose their own --task, --out, --model, "
                   "--init, --teacher and tokenizer, and run to the end: give --train/--dev/--test (or --data) to "
                   "choose them, or to --resume and --stop-after";
    if (!conflict && !builtin && (f.a.resume || f.a.stop_after) && !f.out)
        conflict = "--resume and --stop-after are for a run saved in --out: give --out DIR";
    if (conflict) {
        fprintf(stderr, "demo finetune: %s\n", conflict);
        return 1;
    }
    static const char *comparable[6] = {"sentiment", "topic", "ner", "qa", "all", "none"};
    int known = 0;
    for (int k = 0; k < 6; k++) known |= strcmp(f.compare, comparable[k]) == 0;
    if (!known || (!builtin && f.compare != default_compare)) {
        fprintf(stderr, "demo finetune: --compare is for the built-in examples (no data files), and one of sentiment, "
                "topic, ner, qa, all, none\n");
        return 1;
    }
    if (builtin) { /* the built-in examples' settings */
        if (argc == 0 || (argc == 2 && strcmp(argv[0], "--compare") == 0)) { f.a.epochs = 6; f.a.lr = 3e-3f; }
        return finetune_builtin(&f);
    }
    char report[1024], state[1024];
    report_path_for(&f, report, sizeof(report));
    if (f.out) { /* where the run stands, to --resume it */
        snprintf(state, sizeof(state), "%s/finetune.state", f.out);
        f.a.state_path = state;
    }
    double score;
    return finetune_files(&f, &score);
}

/* ------------------------------------------------------------------------ */
/* eval: zero-, one- and few-shot, as the GPT-3 paper evaluates (Sec. 2.4)  */
/*                                                                          */
/* Each item is scored after K demonstrations, drawn at random from the     */
/* training file (or the same file, never the item itself), each its        */
/* context and its correct completion, separated by a blank line, then the  */
/* item's context. A completion is scored as " " + its text (unless it      */
/* starts with a space), its tokens encoded apart from the context, as      */
/* lm-evaluation-harness does:                                              */
/*   multiple choice: the choice with the highest log-likelihood wins,      */
/*     as it is (acc), per token, per character (acc_norm), and with       */
/*     --norm divided by its likelihood after "Answer:" (the paper's        */
/*     unconditional normalisation, in logs a difference);                 */
/*   completion (cloze): the target's tokens all greedy (exact match), and  */
/*     its perplexity.                                                      */
/* A prompt longer than the context drops its oldest demonstrations, never  */
/* the item (an item too long alone loses its context's start).            */

/* ---- A small JSON reader: one object a line, its top-level members ---- */

static const char *json_space(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    return p;
}

static int hex4(const char *p, const char *end, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (p + i >= end || !isxdigit((unsigned char)p[i])) return 0;
        *v = *v * 16 + (unsigned)(isdigit((unsigned char)p[i]) ? p[i] - '0' : (tolower((unsigned char)p[i]) - 'a' + 10));
    }
    return 1;
}

/* Code point cp as UTF-8 at out; its length. */
static int put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12); out[1] = (char)(0x80 | (cp >> 6 & 63)); out[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18); out[1] = (char)(0x80 | (cp >> 12 & 63));
    out[2] = (char)(0x80 | (cp >> 6 & 63)); out[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* Set when a copy of a JSON string could not be allocated: the parser
   then returns 0, as for malformed JSON, and its caller says which. */
static int json_out_of_memory = 0;

/* Set when a decoded string held \u0000: a C string would end there, so
   a caller that resets it and then finds it set refuses the string. */
static int json_nul_seen = 0;

/* The string at *p (after its opening quote) decoded into out,
   NUL-terminated (out NULL: only checked); *p moves past its closing
   quote. out needs as many bytes as the string takes in the JSON, its
   closing quote included. 0 if it is malformed. */
static int json_decode(const char **p, const char *end, char *out) {
    const char *s = *p;
    size_t n = 0;
    while (s < end && *s != '"') {
        unsigned cp = (unsigned char)*s++;
        if (cp < 0x20) break; /* a raw control character */
        if (cp == '\\') {
            char e = s < end ? *s++ : 0;
            const char *simple = strchr("\"\\/bfnrt", e), *as = "\"\\/\b\f\n\r\t";
            if (e && simple) cp = (unsigned char)as[simple - "\"\\/bfnrt"];
            else if (e == 'u' && hex4(s, end, &cp)) {
                s += 4;
                unsigned lo;
                if (cp >= 0xd800 && cp < 0xdc00 && end - s >= 6 && s[0] == '\\' && s[1] == 'u' && hex4(s + 2, end, &lo) &&
                    lo >= 0xdc00 && lo < 0xe000) { /* a surrogate pair */
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s += 6;
                } else if (cp >= 0xd800 && cp < 0xe000) {
                    cp = 0xfffd; /* a lone surrogate */
                }
                json_nul_seen |= cp == 0;
                if (out) { n += (size_t)put_utf8(out + n, cp); }
                continue;
            } else {
                break;
            }
        }
        if (out) out[n++] = (char)cp;
    }
    if (s >= end || *s != '"') return 0;
    if (out) out[n] = 0;
    *p = s + 1;
    return 1;
}

/* The string at *p (after its opening quote) decoded into a new
   NUL-terminated copy (*text, or NULL to skip it); *p moves past its closing
   quote. 0 if it is malformed (or memory ran out: json_out_of_memory). */
static int json_text(const char **p, const char *end, char **text) {
    const char *after = *p;
    if (!text) return json_decode(p, end, NULL);
    if (!json_decode(&after, end, NULL)) return 0;
    if (!(*text = (char *)malloc((size_t)(after - *p)))) return !(json_out_of_memory = 1);
    return json_decode(p, end, *text);
}

/* Past the number, true, false or null at p, as JSON writes them (no
   leading zeros, no "+", digits on both sides of "."); NULL if none. */
static const char *json_literal(const char *p, const char *end) {
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(end - p) >= n && memcmp(p, words[i], n) == 0) return p + n;
    }
    p += p < end && *p == '-';
    if (p >= end || !isdigit((unsigned char)*p)) return NULL;
    if (*p == '0') p++;
    else while (p < end && isdigit((unsigned char)*p)) p++;
    if (p < end && *p == '.') {
        if (++p >= end || !isdigit((unsigned char)*p)) return NULL;
        while (p < end && isdigit((unsigned char)*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        p += p < end && (*p == '+' || *p == '-');
        if (p >= end || !isdigit((unsigned char)*p)) return NULL;
        while (p < end && isdigit((unsigned char)*p)) p++;
    }
    return p;
}

/* Past the value at p (any kind, nested to 64 levels); NULL if malformed. */
static const char *json_skip(const char *p, const char *end, int depth) {
    p = json_space(p, end);
    if (p >= end || depth > 64) return NULL;
    if (*p == '"') { p++; return json_text(&p, end, NULL) ? p : NULL; }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_space(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (close == '}') { /* "key": value */
                if (p >= end || *p != '"') return NULL;
                p++;
                if (!json_text(&p, end, NULL)) return NULL;
                p = json_space(p, end);
                if (p >= end || *p++ != ':') return NULL;
            }
            if (!(p = json_skip(p, end, depth + 1))) return NULL;
            p = json_space(p, end);
            if (p < end && *p == close) return p + 1;
            if (p >= end || *p++ != ',') return NULL;
            p = json_space(p, end);
        }
    }
    return json_literal(p, end);
}

/* The value of member `key` of the object line[0 .. n) (its start), NULL if
   there is none; *bad = 1 if the line is not one JSON object. */
static const char *json_member(const char *line, size_t n, const char *key, int *bad) {
    const char *p = json_space(line, line + n), *end = line + n, *found = NULL;
    *bad = 1;
    if (p >= end || *p++ != '{') return NULL;
    p = json_space(p, end);
    if (p < end && *p == '}') { *bad = json_space(p + 1, end) != end; return NULL; }
    for (;;) {
        /* A name that matches key (at most 64 bytes) takes at most 6 x 64
           bytes in the JSON, each byte written as \u00XX at most. */
        char name[6 * 64 + 2];
        const char *after = p + 1;
        if (p >= end || *p++ != '"' || !json_decode(&after, end, NULL)) return NULL;
        int match = (size_t)(after - p) <= sizeof(name) && json_decode(&p, end, name) && strcmp(name, key) == 0;
        p = json_space(after, end);
        if (p >= end || *p++ != ':') return NULL;
        const char *value = json_space(p, end);
        if (!(p = json_skip(p, end, 0))) return NULL;
        if (match) found = value; /* the last of the same name, as Python's json module takes */
        p = json_space(p, end);
        if (p < end && *p == '}') { *bad = json_space(p + 1, end) != end; return found; }
        if (p >= end || *p++ != ',') return NULL;
        p = json_space(p, end);
    }
}

/* The strings of the array at p, each a new copy, in *out (n of them). */
static int json_texts(const char *p, const char *end, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    p = json_space(p, end);
    if (p >= end || *p++ != '[') return 0;
    p = json_space(p, end);
    if (p < end && *p == ']') return 1;
    for (;;) {
        char *text, **grown = (char **)realloc(*out, (size_t)(*n + 1) * sizeof(char *));
        if (!grown) return !(json_out_of_memory = 1);
        *out = grown;
        if (p >= end || *p++ != '"' || !json_text(&p, end, &text)) return 0;
        (*out)[(*n)++] = text;
        p = json_space(p, end);
        if (p < end && *p == ']') return 1;
        if (p >= end || *p++ != ',') return 0;
        p = json_space(p, end);
    }
}

/* ---- The items ---- */

#define EVAL_MAX_CHOICES 64

typedef struct {
    char *context;
    char **choices;  /* multiple choice: every choice; a completion: its target alone */
    int n_choices;
    int label;       /* the correct choice (a completion: 0)                 */
} EvalItem;

typedef struct {
    EvalItem *items;
    int count;
    int cloze;       /* 1: completions ({"context", "target"}); 0: choices    */
    const char *path;
} EvalSet;

static void eval_set_free(EvalSet *s) {
    for (int i = 0; i < s->count; i++) {
        EvalItem *it = &s->items[i];
        free(it->context);
        for (int c = 0; c < it->n_choices; c++) free(it->choices[c]);
        free(it->choices);
    }
    free(s->items);
    memset(s, 0, sizeof(*s));
}

/* The first of two member names that the line has (ours, or HellaSwag's). */
static const char *json_either(const char *line, size_t n, const char *a, const char *b, int *bad) {
    const char *v = json_member(line, n, a, bad);
    return v || *bad ? v : json_member(line, n, b, bad);
}

/* One JSONL line into *it: {"context", "choices", "label"} (HellaSwag's
   "ctx", "endings", "label" as they are) or {"context", "target"}. Returns
   1 for choices, 2 for a completion, 0 (said) if the line is wrong. */
static int eval_item(const char *path, int line_no, const char *line, size_t n, EvalItem *it) {
    int bad;
    json_nul_seen = 0;
    const char *end = line + n, *context = json_either(line, n, "context", "ctx", &bad);
    const char *why = bad ? "not one JSON object" : !context ? "no \"context\" (or HellaSwag's \"ctx\")" : NULL;
    memset(it, 0, sizeof(*it));
    if (!why && (*context != '"' || (context++, !json_text(&context, end, &it->context)))) why = "the context is not a string";
    if (!why && !it->context[0]) why = "an empty context";
    const char *target = why ? NULL : json_member(line, n, "target", &bad);
    const char *choices = why || target ? NULL : json_either(line, n, "choices", "endings", &bad);
    const char *label = choices ? json_member(line, n, "label", &bad) : NULL;
    if (!why && target) {
        it->choices = (char **)calloc(1, sizeof(char *));
        json_out_of_memory |= !it->choices;
        if (!it->choices || *target != '"' || (target++, !json_text(&target, end, &it->choices[0]))) why = "the target is not a string";
        else it->n_choices = 1;
        if (!why && !it->choices[0][0]) why = "an empty target";
    } else if (!why && !choices) {
        why = "neither \"choices\" (or \"endings\") nor \"target\"";
    } else if (!why && !json_texts(choices, end, &it->choices, &it->n_choices)) {
        why = "the choices are not an array of strings";
    } else if (!why && (it->n_choices < 2 || it->n_choices > EVAL_MAX_CHOICES)) {
        why = it->n_choices < 2 ? "fewer than two choices" : "more than 64 choices";
    } else if (!why && !label) {
        why = "no \"label\" (the correct choice's index)";
    }
    for (int c = 0; !why && c < it->n_choices; c++)
        if (!it->choices[c][0]) why = "an empty choice";
    if (!why && json_nul_seen) why = "a string holds \\u0000 (a NUL character), which a prompt cannot";
    if (!why && label) { /* an integer, or one in a string (as Hugging Face's HellaSwag has it) */
        char *endp = NULL;
        const char *digits = *label == '"' ? label + 1 : label;
        int sign = *digits == '-', integer = isdigit((unsigned char)digits[sign]);
        long k = integer ? strtol(digits, &endp, 10) : 0;
        if (integer) /* all of the string; a number with no fraction or exponent */
            integer = *label == '"' ? *endp == '"' : *endp != '.' && *endp != 'e' && *endp != 'E';
        if (!integer) why = "the label is not an integer";
        else if (k < 0 || k >= it->n_choices) why = "the label is not the index of a choice";
        else it->label = (int)k;
    }
    if (why) {
        fprintf(stderr, "demo eval: %s:%d: %s\n", path, line_no, json_out_of_memory ? gpt3_strerror(GPT3_ERR_NOMEM) : why);
        return 0;
    }
    return target ? 2 : 1;
}

static int load_eval_set(const char *path, EvalSet *s) {
    size_t size;
    char *text = (char *)read_file(path, &size);
    memset(s, 0, sizeof(*s));
    s->path = path;
    if (!text) return 1;
    int status = !no_nul(path, text, size), capacity = 0, line_no = 0, kind = 0;
    for (char *line = text + utf8_bom(text, size); status == 0 && line < text + size; line_no++) {
        char *eol = memchr(line, '\n', (size_t)(text + size - line)), *end = eol ? eol : text + size;
        size_t n = (size_t)(end - line);
        line = eol ? eol + 1 : text + size;
        if (json_space(end - n, end) == end) continue; /* a blank line */
        if (s->count == capacity) {
            capacity = capacity ? 2 * capacity : 256;
            EvalItem *grown = (EvalItem *)realloc(s->items, (size_t)capacity * sizeof(EvalItem));
            if (!grown) { status = fail(path, GPT3_ERR_NOMEM); break; }
            s->items = grown;
        }
        int got = eval_item(path, line_no + 1, end - n, n, &s->items[s->count]);
        s->count++; /* freed with the set, whole or not */
        if (got && kind && got != kind) {
            fprintf(stderr, "demo eval: %s:%d: a %s among %s: one kind of item a file\n", path, line_no + 1,
                    got == 2 ? "completion" : "multiple choice", kind == 2 ? "completions" : "multiple choices");
            got = 0;
        }
        kind = got;
        status = !got;
    }
    free(text);
    s->cloze = kind == 2;
    if (status == 0 && s->count == 0) {
        fprintf(stderr, "demo eval: %s has no items\n", path);
        status = 1;
    }
    return status;
}

/* ---- Scoring an item after K demonstrations ---- */

typedef struct {
    GPT3 *m;
    GPT3Tokenizer *tok;
    const EvalSet *pool;   /* where demonstrations come from              */
    int same_file;         /* the pool is the evaluated file: skip the item */
    int norm;              /* also the unconditional normalisation        */
    uint64_t seed;
    FILE *details;
    int *answer;           /* the tokens of "Answer:"                      */
    size_t n_answer;
} Evaluator;

typedef struct {
    long items, cut;       /* items, and those that lost demonstrations   */
    long correct[4];       /* by sum, per token, per character, unconditional */
    double logprob;        /* completions: summed over their tokens, ...  */
    long tokens;           /* ... of which there are                      */
} EvalTally;

/* A completion is scored as " " + its text, unless that starts with a space. */
static const char *space_before(const char *text) { return isspace((unsigned char)text[0]) ? "" : " "; }

static char *continuation(const char *text) {
    size_t n = strlen(text);
    char *out = (char *)malloc(n + 2);
    if (out) snprintf(out, n + 2, "%s%s", space_before(text), text);
    return out;
}

/* Unicode characters of a UTF-8 text (bytes that do not continue one). */
static long characters(const char *s) {
    long n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* K distinct demonstrations for item i, drawn from the pool by a seed of
   (seed, K, i): the same whatever else is evaluated. */
static void draw_demonstrations(const Evaluator *e, int i, int K, int *demo) {
    GPT3Rng rng;
    gpt3_rng_seed(&rng, e->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)K * 1000003u + (uint64_t)i);
    for (int k = 0; k < K;) {
        int j = (int)(gpt3_rng_u32(&rng) % (uint32_t)e->pool->count), seen = e->same_file && j == i;
        for (int q = 0; q < k; q++) seen |= demo[q] == j;
        if (!seen) demo[k++] = j;
    }
}

/* The prompt: demonstrations demo[first .. K), each its context and its
   correct completion, a blank line after each, then the item's context. */
static char *eval_prompt(const Evaluator *e, const EvalItem *it, const int *demo, int first, int K) {
    size_t n = strlen(it->context) + 1;
    for (int k = first; k < K; k++) {
        const EvalItem *d = &e->pool->items[demo[k]];
        n += strlen(d->context) + strlen(d->choices[d->label]) + 4;
    }
    char *prompt = (char *)malloc(n), *p = prompt;
    for (int k = first; prompt && k < K; k++) {
        const EvalItem *d = &e->pool->items[demo[k]];
        const char *gold = d->choices[d->label];
        p += sprintf(p, "%s%s%s\n\n", d->context, space_before(gold), gold);
    }
    if (prompt) strcpy(p, it->context);
    return prompt;
}

/* The context's tokens with as many demonstrations as fit before the
   longest choice (longest tokens): the oldest go first; alone too long, the
   context keeps its last tokens. *cut: demonstrations or tokens went. */
static int eval_context(const Evaluator *e, const EvalItem *it, const int *demo, int K, int longest,
                        int **ids, size_t *n_ids, int *cut) {
    int room = context_room(e->m) - longest;
    *cut = 0;
    for (int first = 0; first <= K; first++) {
        char *prompt = eval_prompt(e, it, demo, first, K);
        int rc = prompt ? gpt3_encode(e->tok, prompt, strlen(prompt), ids, n_ids) : GPT3_ERR_NOMEM;
        free(prompt);
        if (rc != GPT3_OK) return rc;
        if (*n_ids <= (size_t)room || first == K) break;
        free(*ids);
        *cut = 1;
    }
    if (*n_ids > (size_t)room) { /* the item's own context: its start goes */
        memmove(*ids, *ids + (*n_ids - (size_t)room), (size_t)room * sizeof(int));
        *n_ids = (size_t)room;
        *cut = 1;
    }
    return GPT3_OK;
}

static void json_ids(FILE *f, const int *ids, size_t n) {
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? "," : "", ids[i]);
    fputc(']', f);
}

/* One line of --details: what each choice was scored after, and how. */
static void eval_details(const Evaluator *e, int i, int K, const int *ctx, size_t n_ctx, int *const *ids,
                         const int *n_ids, const double *lp, const long *chars, int n, int label, int pred) {
    fprintf(e->details, "{\"item\": %d, \"shots\": %d, \"label\": %d, \"predicted\": %d, \"context_ids\": ", i, K, label,
            pred);
    json_ids(e->details, ctx, n_ctx);
    fprintf(e->details, ", \"choices\": [");
    for (int c = 0; c < n; c++) {
        fprintf(e->details, "%s{\"ids\": ", c ? ", " : "");
        json_ids(e->details, ids[c], (size_t)n_ids[c]);
        fprintf(e->details, ", \"logprob\": %.9g, \"tokens\": %d, \"characters\": %ld}", lp[c], n_ids[c], chars[c]);
    }
    fprintf(e->details, "]}\n");
}

/* The index of the best of n scores: score[c] / divisor[c] (divisor NULL: 1). */
static int best_of(const double *score, const double *divisor, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (score[c] / (divisor ? divisor[c] : 1.0) > score[best] / (divisor ? divisor[best] : 1.0)) best = c;
    return best;
}

/* Item i after K demonstrations, into the tally: GPT3_OK, an error code,
   or EVAL_SAID (a choice that cannot fit, said). */
enum { EVAL_SAID = -1 };
static int eval_one(const Evaluator *e, const EvalItem *it, int i, int K, EvalTally *tally) {
    int n = it->n_choices, demo[256], *ids[EVAL_MAX_CHOICES], n_ids[EVAL_MAX_CHOICES], longest = 0, cut = 0;
    int greedy[EVAL_MAX_CHOICES], rc = GPT3_OK, *ctx = NULL;
    double lp[EVAL_MAX_CHOICES], uncond[EVAL_MAX_CHOICES], tokens[EVAL_MAX_CHOICES], chars_d[EVAL_MAX_CHOICES];
    long chars[EVAL_MAX_CHOICES];
    size_t n_ctx = 0;
    memset(ids, 0, sizeof(ids));
    for (int c = 0; rc == GPT3_OK && c < n; c++) {
        char *text = continuation(it->choices[c]);
        size_t got = 0;
        rc = text ? gpt3_encode(e->tok, text, strlen(text), &ids[c], &got) : GPT3_ERR_NOMEM;
        chars[c] = text ? characters(text) : 0;
        free(text);
        n_ids[c] = (int)got;
        longest = n_ids[c] > longest ? n_ids[c] : longest;
    }
    if (rc == GPT3_OK && longest >= context_room(e->m)) {
        fprintf(stderr, "demo eval: %s: item %d has a choice of %d tokens, as long as the model's context (%d%s)\n",
                e->pool->path, i + 1, longest, context_room(e->m), e->m->prompt ? " after its soft prompt" : "");
        rc = EVAL_SAID;
    }
    draw_demonstrations(e, i, K, demo);
    if (rc == GPT3_OK) rc = eval_context(e, it, demo, K, longest, &ctx, &n_ctx, &cut);
    if (rc == GPT3_OK)
        rc = gpt3_score_choices(e->m, ctx, (int)n_ctx, (const int *const *)ids, n_ids, n, lp, greedy);
    if (rc == GPT3_OK && e->norm && !e->pool->cloze) { /* after "Answer:", its start cut as a context's is */
        int keep = context_room(e->m) - longest < (int)e->n_answer ? context_room(e->m) - longest : (int)e->n_answer;
        rc = gpt3_score_choices(e->m, e->answer + (e->n_answer - (size_t)keep), keep, (const int *const *)ids, n_ids, n,
                                uncond, NULL);
    }
    if (rc == GPT3_OK) {
        for (int c = 0; c < n; c++) {
            tokens[c] = n_ids[c];
            chars_d[c] = (double)chars[c];
            if (e->norm && !e->pool->cloze) uncond[c] = lp[c] - uncond[c]; /* log P(c | context) / P(c | "Answer:") */
        }
        int pred = best_of(lp, NULL, n);
        tally->items++;
        tally->cut += cut;
        tally->correct[0] += e->pool->cloze ? greedy[0] : pred == it->label;
        tally->correct[1] += best_of(lp, tokens, n) == it->label;
        tally->correct[2] += best_of(lp, chars_d, n) == it->label;
        tally->correct[3] += e->norm && !e->pool->cloze && best_of(uncond, NULL, n) == it->label;
        tally->logprob += lp[0];
        tally->tokens += n_ids[0];
        if (e->details) eval_details(e, i, K, ctx, n_ctx, ids, n_ids, lp, chars, n, it->label, pred);
    }
    for (int c = 0; c < n; c++) free(ids[c]);
    free(ctx);
    return rc;
}

/* ---- The command ---- */

/* "0,1,4,16" into shots (at most 16 values, each 0 .. 256); their count, or
   0 (said) if the list is not one. */
static int parse_shots(const char *text, int *shots) {
    int n = 0;
    for (const char *p = text; *p && n < 16;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 0 || k > 256 || (*end && *end != ',')) break;
        shots[n++] = (int)k;
        p = *end ? end + 1 : end;
        if (!*p && *end) { n = 0; break; } /* a trailing comma */
        if (!*p) return n;
    }
    fprintf(stderr, "demo eval: --shots must be a list of 0 to 256 demonstrations, such as 0,1,4,16 (got '%s')\n", text);
    return 0;
}

/* A 95% confidence interval's half width for a proportion p of n (the
   normal approximation: 1.96 sqrt(p (1 - p) / n)). */
static double interval95(double p, long n) { return n > 0 ? 1.96 * sqrt(p * (1.0 - p) / (double)n) : 0.0; }

static void eval_report(const Evaluator *e, int K, const EvalTally *t, double seconds) {
    double n = t->items > 0 ? (double)t->items : 1.0, acc = t->correct[0] / n;
    if (e->pool->cloze) {
        printf("%d-shot: %ld items, exact match %.4f ± %.4f (95%% CI), perplexity of the targets %.3f", K, t->items,
               acc, interval95(acc, t->items), exp(-t->logprob / (t->tokens ? t->tokens : 1)));
    } else {
        printf("%d-shot: %ld items, accuracy %.4f ± %.4f (95%% CI), per token %.4f, per character (acc_norm) %.4f", K,
               t->items, acc, interval95(acc, t->items), t->correct[1] / n, t->correct[2] / n);
        if (e->norm) printf(", unconditional %.4f", t->correct[3] / n);
    }
    printf("; %.1f items/s\n", t->items / (seconds > 0 ? seconds : 1e-9));
    if (t->cut)
        printf("  %ld of them did not fit the context (%d tokens) whole: the oldest demonstrations went first "
               "(then the item's context's start)\n", t->cut, context_room(e->m));
    fflush(stdout);
}

/* y[0 .. n) as a line across an SVG, y from 0 (bottom) to top: with
   labels, each point marked and labelled below (eval's K = 0, 1, ...);
   with mark >= 0, a dashed line at point mark, saying mark_text. */
typedef struct { const char *title, *x_title, *mark_text; const char *const *labels; int mark; double top; } LinePlot;

static void line_plot(const char *path, const LinePlot *p, const double *y, int n) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "demo eval: cannot write %s: %s\n", path, strerror(errno)); return; }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"360\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"640\" height=\"360\" fill=\"white\"/>\n"
               "<text x=\"320\" y=\"20\" text-anchor=\"middle\">%s</text>\n", p->title);
    for (int g = 0; g <= 4; g++)
        fprintf(f, "<line x1=\"60\" x2=\"620\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"52\" y=\"%d\" "
                   "text-anchor=\"end\">%.2f</text>\n", 320 - g * 70, 320 - g * 70, 324 - g * 70, p->top * g / 4);
    double step = 520.0 / (n > 1 ? n - 1 : 1);
    if (p->mark >= 0)
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"40\" y2=\"320\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>"
                   "<text x=\"%.1f\" y=\"52\" fill=\"#d62728\">%s</text>\n", 80 + step * p->mark, 80 + step * p->mark,
                80 + step * p->mark + 4, p->mark_text);
    fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
    for (int i = 0; i < n; i++) fprintf(f, "%.1f,%.1f ", 80 + step * i, 320 - 280 * fmin(y[i] / p->top, 1.0));
    fprintf(f, "\"/>\n");
    for (int i = 0; p->labels && i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#1f77b4\"/><text x=\"%.1f\" y=\"340\" "
                   "text-anchor=\"middle\">%s</text>\n", 80 + step * i, 320 - 280 * fmin(y[i] / p->top, 1.0),
                80 + step * i, p->labels[i]);
    if (p->x_title) fprintf(f, "<text x=\"340\" y=\"345\" text-anchor=\"middle\">%s</text>\n", p->x_title);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0) fprintf(stderr, "demo eval: cannot write %s\n", path);
}

/* Every item after K demonstrations, a progress line on a terminal. */
static int eval_all(const Evaluator *e, const EvalSet *set, int K, int limit, EvalTally *t) {
    double t0 = now_seconds(), shown = t0;
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < set->count && i < limit; i++) {
        int rc = eval_one(e, &set->items[i], i, K, t);
        if (rc != GPT3_OK) return rc == EVAL_SAID ? 1 : fail("eval", rc);
        if (stderr_is_terminal() && now_seconds() - shown > 1.0) {
            shown = now_seconds();
            fprintf(stderr, "\r%d-shot: %d of %d items, %.1f items/s ", K, i + 1, set->count,
                    (i + 1) / (shown - t0));
        }
    }
    if (stderr_is_terminal()) fprintf(stderr, "\r%60s\r", "");
    eval_report(e, K, t, now_seconds() - t0);
    return 0;
}

/* ---- In-context learning you can watch: induction (Olsson et al. 2022) ----
   B sequences of N random tokens, each repeated (T = 2N). The first copy
   cannot be predicted (its loss is about ln V); in the second, a model
   with induction heads looks back for the token's last occurrence and
   copies what followed it, and the loss falls: learning from the context,
   with no gradient step. */

/* loss (2N - 1): the mean over B sequences of the loss at each position. */
static int repeated_losses(GPT3 *m, int N, int B, uint64_t seed, double *loss) {
    int T = 2 * N, V = m->config.vocab_size, rc;
    int *inputs = (int *)malloc((size_t)B * T * sizeof(int)), *targets = (int *)malloc((size_t)B * T * sizeof(int));
    GPT3Rng rng;
    gpt3_rng_seed(&rng, seed);
    if (!inputs || !targets) { free(inputs); free(targets); return GPT3_ERR_NOMEM; }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++)
            inputs[b * T + t] = inputs[b * T + N + t] = (int)(gpt3_rng_u32(&rng) % (uint32_t)V);
    for (int i = 0; i < B * T; i++) targets[i] = i % T < T - 1 ? inputs[i + 1] : -1;
    m->training = 0;
    rc = gpt3_forward(m, inputs, targets, B, T);
    for (int t = 0; rc == GPT3_OK && t < T - 1; t++) {
        loss[t] = 0.0;
        for (int b = 0; b < B; b++) loss[t] += m->acts.losses[b * T + t] / B;
    }
    free(inputs);
    free(targets);
    return rc;
}

/* The mean of loss[from .. to). */
static double mean_of(const double *loss, int from, int to) {
    double sum = 0.0;
    for (int t = from; t < to; t++) sum += loss[t];
    return to > from ? sum / (to - from) : 0.0;
}

/* loss (T = the model's context): the mean loss at each position of
   windows of real text. A loss at one position is noisy (about 1 nat from
   window to window), so the windows overlap: one starts every T/8 tokens,
   4096 at most, spread over the whole file. GPT3_ERR_SEQ_LEN: the file
   holds no whole window (T + 1 tokens). */
static int position_losses(GPT3 *m, const char *val_path, double *loss) {
    GPT3Tokens val;
    int T = m->config.max_seq_len, B = 16, rc = gpt3_tokens_load(&val, val_path);
    if (rc != GPT3_OK) return rc;
    rc = val.vocab_size != m->config.vocab_size ? GPT3_ERR_MISMATCH : val.count < (size_t)T + 1 ? GPT3_ERR_SEQ_LEN : GPT3_OK;
    if (rc != GPT3_OK) {
        gpt3_tokens_free(&val);
        return rc;
    }
    size_t starts = (val.count - T - 1) / (size_t)(T / 8 > 0 ? T / 8 : 1) + 1;
    int windows = starts < 4096 ? (int)starts : 4096;
    int *inputs = (int *)malloc((size_t)B * T * sizeof(int)), *targets = (int *)malloc((size_t)B * T * sizeof(int));
    rc = inputs && targets ? GPT3_OK : GPT3_ERR_NOMEM;
    for (int t = 0; t < T; t++) loss[t] = 0.0;
    m->training = 0;
    for (int w0 = 0; rc == GPT3_OK && w0 < windows; w0 += B) {
        int n = windows - w0 < B ? windows - w0 : B;
        for (int b = 0; b < n; b++) {
            size_t start = (size_t)((double)(w0 + b) * (double)(val.count - T - 1) / (windows > 1 ? windows - 1 : 1));
            for (int t = 0; t < T; t++) {
                inputs[b * T + t] = val.tokens[start + t];
                targets[b * T + t] = val.tokens[start + t + 1];
            }
        }
        rc = gpt3_forward(m, inputs, targets, n, T);
        for (int i = 0; rc == GPT3_OK && i < n * T; i++) loss[i % T] += m->acts.losses[i] / windows;
    }
    free(inputs);
    free(targets);
    gpt3_tokens_free(&val);
    return rc;
}

/* The in-context learning score (Olsson et al.) of position_losses: the
   loss at a late position minus that at an early one; below 0, the model
   predicts better the more of a text it has read. Late: the last
   position; early: a tenth of the way (the paper's 500th and 50th of 512),
   past what the last few tokens alone tell. */
static double context_score(const double *loss, int T, int *early, int *late) {
    *early = T / 10;
    *late = T - 1;
    return loss[*late] - loss[*early];
}

/* "at token 1 2 4 ... T: l1 l2 l4 ... lT" of position_losses, in text. */
static const char *loss_by_position(const double *loss, int T, char *text, size_t size) {
    int at[32], n_at = 0;
    for (int t = 1; t < T && n_at < 31; t *= 2) at[n_at++] = t;
    at[n_at++] = T;
    size_t n = (size_t)snprintf(text, size, "at token");
    for (int i = 0; i < n_at && n < size; i++) n += (size_t)snprintf(text + n, size - n, " %d", at[i]);
    if (n < size) n += (size_t)snprintf(text + n, size - n, ":");
    for (int i = 0; i < n_at && n < size; i++) n += (size_t)snprintf(text + n, size - n, " %.2f", loss[at[i] - 1]);
    return text;
}

/* eval --induction: both, and the picture. */
static int eval_induction(GPT3 *m, const char *data, const char *plot, uint64_t seed) {
    int N = m->config.max_seq_len / 2 < 64 ? m->config.max_seq_len / 2 : 64, V = m->config.vocab_size;
    double *loss = (double *)malloc((size_t)2 * N * sizeof(double));
    int rc = loss ? repeated_losses(m, N, 16, seed, loss) : GPT3_ERR_NOMEM;
    if (rc != GPT3_OK) { free(loss); return fail("eval --induction", rc); }
    printf("induction: %d random tokens, repeated (16 sequences): loss %.3f on the first copy, %.3f on the second "
           "(ln V = %.3f)\n", N, mean_of(loss, 0, N - 1), mean_of(loss, N, 2 * N - 1), log((double)V));
    char title[256];
    snprintf(title, sizeof(title), "loss at each position: %d random tokens, then the same again", N);
    double top = 1.25 * log((double)V); /* the axis holds ln V, and every loss */
    for (int t = 0; t < 2 * N - 1; t++) top = fmax(top, 1.05 * loss[t]);
    LinePlot p = {title, "position (the token predicted is the next)", "the copy starts", NULL, N - 1, top};
    line_plot(plot ? plot : "induction.svg", &p, loss, 2 * N - 1);
    fprintf(stderr, "loss against position drawn in %s\n", plot ? plot : "induction.svg");
    free(loss);
    if (!data) return 0;
    char path[MAX_PATH + 16], curve[256];
    int T = m->config.max_seq_len, early, late;
    snprintf(path, sizeof(path), "%s.val.tok", data);
    if (!(loss = (double *)malloc((size_t)T * sizeof(double)))) return fail("eval --induction", GPT3_ERR_NOMEM);
    if ((rc = position_losses(m, path, loss)) != GPT3_OK) {
        free(loss);
        if (rc != GPT3_ERR_SEQ_LEN) return fail(path, rc);
        fprintf(stderr, "demo eval: %s holds fewer than %d tokens: the score needs whole windows of the model's "
                "context and the next token\n", path, T + 1);
        return 1;
    }
    double score = context_score(loss, T, &early, &late);
    printf("loss by position in %s's windows: %s\n", path, loss_by_position(loss, T, curve, sizeof(curve)));
    printf("in-context learning score: loss at token %d minus loss at token %d of %s's windows: %+.3f\n", late + 1,
           early + 1, path, score);
    free(loss);
    return 0;
}

static int cmd_eval(int argc, char **argv) {
    const char *model = "demo_out/model.ckpt", *task = NULL, *train = NULL, *shots_text = "0", *details = NULL;
    const char *plot = NULL, *encoder = NULL, *bpe = NULL, *data = NULL;
    int seed = 1234, norm = 0, limit = INT_MAX, shots[16], induction = 0;
    Option opts[] = {
        {"model", OPT_STRING, &model, "checkpoint (its tokenizer beside it)"},
        {"task", OPT_STRING, &task, "JSONL items: {\"context\", \"choices\", \"label\"} (HellaSwag's ctx/endings/label "
                                    "too) or {\"context\", \"target\"}"},
        {"train", OPT_STRING, &train, "demonstrations from this JSONL (default: the task file, never the item itself)"},
        {"shots", OPT_STRING, &shots_text, "demonstrations K, or a list: 0,1,4,16"},
        {"norm", OPT_SWITCH, &norm, "also the paper's unconditional normalisation, P(choice | context) / P(choice | \"Answer:\")"},
        {"details", OPT_STRING, &details, "a JSON line per item and K: the token ids scored, each choice's log-likelihood"},
        {"plot", OPT_STRING, &plot, "accuracy against K as an SVG (default with several K: eval.svg)"},
        {"limit", OPT_INT, &limit, "the first N items only"},
        {"induction", OPT_SWITCH, &induction, "instead: the loss on repeated random tokens (induction heads), "
                                              "and with --data the in-context learning score"},
        {"data", OPT_STRING, &data, "--induction: token files PREFIX (PREFIX.val.tok: real text)"},
        {"seed", OPT_INT, &seed, "seed of the demonstrations' draw"},
        {"encoder", OPT_STRING, &encoder, "encoder.json (default: beside the model)"},
        {"bpe", OPT_STRING, &bpe, "vocab.bpe"},
    };
    int rc = parse_flags("eval", "Zero-, one- and few-shot evaluation, as the GPT-3 paper does it (Section 2.4).",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    int n_shots = parse_shots(shots_text, shots);
    if (!n_shots || !check_range("eval", "limit", limit, 1, INT_MAX)) return 1;
    if (induction || data) {
        GPT3 m;
        if (task || !induction) {
            fprintf(stderr, "demo eval: --induction (with or without --data) or --task: one or the other\n");
            return 1;
        }
        if ((rc = gpt3_load(&m, model)) != GPT3_OK) return fail(model, rc);
        rc = eval_induction(&m, data, plot, (uint64_t)seed);
        gpt3_free(&m);
        return rc;
    }
    if (!task) { fprintf(stderr, "demo eval: give --task FILE (JSONL items), or --induction\n"); return 1; }
    EvalSet set, pool;
    GPT3 m;
    GPT3Tokenizer tok;
    memset(&pool, 0, sizeof(pool));
    if (load_eval_set(task, &set)) { eval_set_free(&set); return 1; }
    int status = train && load_eval_set(train, &pool);
    if (!status && train && pool.cloze != set.cloze) {
        fprintf(stderr, "demo eval: %s and %s hold different kinds of items\n", task, train);
        status = 1;
    }
    const EvalSet *from = train ? &pool : &set;
    for (int k = 0; !status && k < n_shots; k++)
        if (shots[k] > from->count - !train) {
            fprintf(stderr, "demo eval: %d demonstrations, but %s has %d items to draw them from%s\n", shots[k],
                    from->path, from->count - !train, train ? "" : " (never the item itself)");
            status = 1;
        }
    if (!status && load_model_and_head(&m, model)) status = 1;
    else if (!status && open_tokenizer(&tok, encoder, bpe, model)) { gpt3_free(&m); status = 1; }
    else if (!status && tok.vocab_size != m.config.vocab_size) {
        fprintf(stderr, "demo eval: %s has %d tokens but its tokenizer %d: give the model's --encoder and --bpe\n",
                model, m.config.vocab_size, tok.vocab_size);
        gpt3_free(&m);
        gpt3_tokenizer_free(&tok);
        status = 1;
    }
    if (status) { eval_set_free(&set); eval_set_free(&pool); return 1; }
    Evaluator e = {&m, &tok, from, !train, norm, (uint64_t)seed, NULL, NULL, 0};
    if (details && !(e.details = fopen(details, "w"))) {
        fprintf(stderr, "demo eval: cannot write %s: %s\n", details, strerror(errno));
        status = 1;
    }
    if (!status && gpt3_encode(&tok, "Answer:", 7, &e.answer, &e.n_answer) != GPT3_OK) status = fail("eval", GPT3_ERR_NOMEM);
    double acc[16];
    for (int k = 0; !status && k < n_shots; k++) {
        EvalTally t;
        status = eval_all(&e, &set, shots[k], limit, &t);
        acc[k] = t.items ? (double)t.correct[0] / t.items : 0.0;
    }
    if (!status && (plot || n_shots > 1)) {
        char title[MAX_PATH + 64], labels[16][16];
        const char *label[16];
        snprintf(title, sizeof(title), "accuracy against demonstrations in the context (%s)", task);
        for (int k = 0; k < n_shots; k++) {
            snprintf(labels[k], sizeof(labels[k]), "K = %d", shots[k]);
            label[k] = labels[k];
        }
        LinePlot p = {title, NULL, NULL, label, -1, 1.0};
        line_plot(plot ? plot : "eval.svg", &p, acc, n_shots);
        fprintf(stderr, "accuracy against K drawn in %s\n", plot ? plot : "eval.svg");
    }
    if (e.details && fclose(e.details) != 0) status = fail(details, GPT3_ERR_WRITE);
    free(e.answer);
    eval_set_free(&set);
    eval_set_free(&pool);
    gpt3_free(&m);
    gpt3_tokenizer_free(&tok);
    return status;
}

/* ------------------------------------------------------------------------ */
/* predict: step 5, the fine-tuned model on new data                        */
/*                                                                          */
/* The input streams: lines are read one at a time, gathered --batch       */
/* examples at a time into one right-padded batch, and the batch's         */
/* predictions are written (and flushed) before the next lines are read:   */
/* memory stays flat whatever the input's size; only a report's gold       */
/* labels grow, two ints an example (or a word). What a user meets:        */
/*  - classify: the first non-empty line decides what the input is. If its */
/*    text before the first tab is one of the head's classes, the input is */
/*    the training TSV (label<TAB>text): every line must be, and a label   */
/*    the head does not know is an error naming the line. Otherwise every  */
/*    line is a text, tabs and all (and if that first line looked like a   */
/*    TSV line, a note says so).                                           */
/*  - ner: CoNLL lines; the first token line decides whether a tag column  */
/*    follows the token (two fields or more: the last is the gold tag)     */
/*    and every token line must then agree. A word past the context gets   */
/*    the tag "-" (and no place in the report, as fine-tuning cut it).     */
/*  - generate: the prompt is the line's text before its first tab (the    */
/*    fine-tuning TSV's prompts hold no tab); a completion ends at a       */
/*    newline, <|endoftext|>, --max-tokens or the context's end, so each   */
/*    is one line. Every prompt's sampler starts from --seed: a prompt's   */
/*    completion does not depend on the lines around it.                   */
/*  - an empty line (or an empty text) gives an empty prediction line, so  */
/*    the output lines up with the input; a text longer than the context   */
/*    keeps its first tokens (a prompt its last ones), as fine-tuning did. */
/*    Both are counted in a note at the end.                               */
/*  - the predicted class is the one evaluate_task picks, from the logits  */
/*    (a binary head: logit > 0), so a report here is fine-tuning's.       */
/*  - JSON strings: bytes that are not UTF-8 become U+FFFD, one per byte.  */

enum { FORMAT_TSV, FORMAT_JSONL, FORMAT_CONLL, FORMAT_TEXT };
static const char *format_names[4] = {"tsv", "jsonl", "conll", "text"};

/* Lines of a file or stdin, one at a time. getc reads as far as the line
   does, so a pipe's lines are answered as they come (with --batch 1). */
typedef struct {
    FILE *f;
    const char *name;    /* the path, or "stdin": for messages             */
    char *line;          /* the last line read, NUL-terminated             */
    size_t size;         /* bytes allocated: grows to the longest line     */
    long line_no;        /* of the last line read, from 1                  */
    int failed;          /* a read error, said                             */
} LineReader;

static int reader_open(LineReader *r, const char *path) {
    memset(r, 0, sizeof(*r));
    r->name = path ? path : "stdin";
    r->f = path ? fopen(path, "rb") : stdin;
    r->size = 256;
    r->line = (char *)malloc(r->size);
    if (r->f && r->line) return 0;
    if (!r->f) fprintf(stderr, "demo predict: cannot open %s: %s\n", path, strerror(errno));
    else fprintf(stderr, "demo predict: out of memory\n");
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
    return 1;
}

static void reader_close(LineReader *r) {
    if (r->f && r->f != stdin) fclose(r->f);
    free(r->line);
}

/* The next line without its "\n" (or "\r\n"), its length in *n; NULL at
   the end of the input, or after an error (said, r->failed set). */
static char *reader_next(LineReader *r, size_t *n) {
    size_t len = 0;
    int c = getc(r->f), nul = 0;
    if (c != EOF) r->line_no++;
    for (; c != EOF && c != '\n'; c = getc(r->f)) {
        if (len + 2 > r->size) {
            char *grown = (char *)realloc(r->line, 2 * r->size);
            if (!grown) {
                fprintf(stderr, "demo predict: %s:%ld: out of memory for a line this long\n", r->name, r->line_no);
                r->failed = 1;
                return NULL;
            }
            r->line = grown;
            r->size *= 2;
        }
        nul |= c == 0;
        r->line[len++] = (char)c;
    }
    if (ferror(r->f)) {
        fprintf(stderr, "demo predict: cannot read %s: %s\n", r->name, strerror(errno));
        r->failed = 1;
        return NULL;
    }
    if (c == EOF && len == 0) return NULL;
    if (nul) {
        fprintf(stderr, "demo predict: %s:%ld: a NUL byte: this is not a text file (or it is damaged)\n", r->name,
                r->line_no);
        r->failed = 1;
        return NULL;
    }
    if (len > 0 && r->line[len - 1] == '\r') len--;
    r->line[len] = 0;
    size_t bom = r->line_no == 1 ? utf8_bom(r->line, len) : 0;
    *n = len - bom;
    return r->line + bom;
}

/* The length of the UTF-8 sequence at s (n bytes left), 0 if it is not
   one (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static int utf8_length(const unsigned char *s, size_t n) {
    int len = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
    unsigned lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80; /* the second byte's range */
    unsigned hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
    if (len == 0 || (size_t)len > n) return 0;
    for (int i = 1; i < len; i++)
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf)) return 0;
    return len;
}

/* s (n bytes) as a JSON string: quotes, backslashes and control characters
   escaped, a byte that is not UTF-8 written as U+FFFD. */
static void json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = utf8_length((const unsigned char *)s + i, n - i);
        const char *escape = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                           : c == '\t' ? "\\t" : NULL;
        if (escape) fputs(escape, stdout);
        else if (c < 0x20) printf("\\u%04x", c);
        else if (len) fwrite(s + i, 1, (size_t)len, stdout);
        else fputs("\\ufffd", stdout);
        i += len ? (size_t)len : 1;
    }
    putchar('"');
}

/* Strings back to back; an offset into it stays valid as it grows. */
typedef struct { char *data; size_t used, size; } Arena;

/* s (n bytes) and a NUL appended; its offset, or SIZE_MAX out of memory. */
static size_t arena_add(Arena *a, const char *s, size_t n) {
    if (a->used + n + 1 > a->size) {
        size_t size = 2 * (a->used + n + 1) + 4096;
        char *grown = (char *)realloc(a->data, size);
        if (!grown) return SIZE_MAX;
        a->data = grown;
        a->size = size;
    }
    memcpy(a->data + a->used, s, n);
    a->data[a->used + n] = 0;
    a->used += n + 1;
    return a->used - n - 1;
}

/* p with room for need items of size bytes (*cap of them now, updated);
   NULL if out of memory, p still valid. */
static void *grow(void *p, int *cap, int need, size_t size) {
    if (need <= *cap) return p;
    int want = 2 * need + 16;
    void *grown = realloc(p, (size_t)want * size);
    if (grown) *cap = want;
    return grown;
}

typedef struct {
    GPT3 m;
    GPT3Tokenizer tok;
    int task, format, batch;
    int room;             /* tokens a sequence may have: the context less a soft prompt */
    int reserved;         /* generate: of those, kept for the completion     */
    int K;                /* the head's outputs (a binary head: 2)          */
    const char **names;   /* (K) their names: the head's, or "0", "1", ...   */
    char *numbers;        /* the text of those numbers                       */
    LineReader in;
    long done, empty, cut, untagged; /* predicted, empty lines, cut texts, words left untagged */
    double t0, shown;     /* the start, the last progress line               */
    int progress;         /* the width of the progress line on the terminal  */
    int gold;             /* the input has gold labels: -1 not known yet     */
    long gold_line;       /* the line that decided                           */
    int *gold_ids, *pred_ids; /* the report's labels, n_gold of them         */
    size_t n_gold, gold_capacity;
    int *inputs, *lengths; /* (batch, room), (batch)                         */
    float *probs;         /* (batch, outputs) or (batch, room, outputs)      */
} Predictor;

static int name_index(const Predictor *p, const char *name) {
    for (int k = 0; k < p->K; k++) if (strcmp(p->names[k], name) == 0) return k;
    return -1;
}

/* The head's names in a list for a message: "a, b, c". */
static void say_names(const Predictor *p) {
    for (int k = 0; k < p->K && k < 20; k++) fprintf(stderr, "%s%s", k ? ", " : "", p->names[k]);
    if (p->K > 20) fprintf(stderr, ", ... (%d in all)", p->K);
}

static int keep_gold(Predictor *p, int gold, int pred) {
    if (p->n_gold == p->gold_capacity) {
        size_t capacity = 2 * p->gold_capacity + 4096;
        int *golds = (int *)realloc(p->gold_ids, capacity * sizeof(int));
        if (golds) p->gold_ids = golds;
        int *preds = golds ? (int *)realloc(p->pred_ids, capacity * sizeof(int)) : NULL;
        if (!preds) return 0;
        p->pred_ids = preds;
        p->gold_capacity = capacity;
    }
    p->gold_ids[p->n_gold] = gold;
    p->pred_ids[p->n_gold++] = pred;
    return 1;
}

/* A batch's predictions are out: flush them, and every ~2 s on a terminal
   say how far it is. 0 if stdout failed (a full disk, a closed pipe). */
static int batch_written(Predictor *p, const char *unit) {
    if (fflush(stdout) != 0 || ferror(stdout)) return 0;
    double now = now_seconds();
    if (stderr_is_terminal() && now - p->shown > 2.0) {
        p->progress = fprintf(stderr, "\rpredict: %ld %s, %.0f %s/s ", p->done, unit, p->done / (now - p->t0), unit);
        p->shown = now;
    }
    return 1;
}

/* Row b of `room` tokens of p->inputs in: at most room of ids, its length
   in p->lengths[b]. Returns whether the text was longer (and cut). */
static int put_row(Predictor *p, int b, const int *ids, size_t n_ids) {
    p->lengths[b] = n_ids > (size_t)p->room ? p->room : (int)n_ids; /* the first tokens */
    memcpy(p->inputs + (size_t)b * p->room, ids, (size_t)p->lengths[b] * sizeof(int));
    return n_ids > (size_t)p->room;
}

/* The head's probabilities for the n rows put in, packed right-padded to
   the longest (T); the predictions are then read off m->head->logits, as
   evaluate_task does. */
static int run_head(Predictor *p, int n, int *T) {
    *T = 1;
    for (int b = 0; b < n; b++) *T = p->lengths[b] > *T ? p->lengths[b] : *T;
    for (int b = 0; b < n; b++) /* rows of `room` -> rows of T: each moves down, never over one unread */
        for (int t = 0; t < *T; t++)
            p->inputs[(size_t)b * *T + t] = t < p->lengths[b] ? p->inputs[(size_t)b * p->room + t] : 0;
    int rc = n > 0 ? gpt3_head_probabilities(&p->m, p->inputs, p->lengths, n, *T, p->probs) : GPT3_OK;
    if (rc != GPT3_OK) fail("predict", rc);
    return rc == GPT3_OK;
}

/* ---- classify */

typedef struct { size_t text, n; int gold; } TextItem; /* n 0: an empty line */

static int classify_batch(Predictor *p, const Arena *texts, const TextItem *items, int count) {
    int n = 0, T, Kz = p->m.head->num_classes;
    for (int i = 0; i < count; i++) {
        int *ids;
        size_t n_ids;
        if (items[i].n == 0) continue;
        if (gpt3_encode(&p->tok, texts->data + items[i].text, items[i].n, &ids, &n_ids) != GPT3_OK)
            return fail("predict", GPT3_ERR_NOMEM), 0;
        p->cut += put_row(p, n++, ids, n_ids);
        free(ids);
    }
    if (!run_head(p, n, &T)) return 0;
    for (int i = 0, b = 0; i < count; i++) {
        const TextItem *it = &items[i];
        const char *text = texts->data + it->text;
        if (it->n == 0) {
            p->empty++;
            if (p->format == FORMAT_JSONL) printf("{\"text\": \"\", \"label\": null, \"probs\": null}\n");
            else printf("\n");
            continue;
        }
        const float *z = p->m.head->logits + (size_t)b * Kz, *probs = p->probs + (size_t)b * p->K;
        int pred = Kz == 1 ? z[0] > 0.0f : argmax(z, Kz);
        b++;
        p->done++;
        if (it->gold >= 0 && !keep_gold(p, it->gold, pred)) return fail("predict", GPT3_ERR_NOMEM), 0;
        if (p->format == FORMAT_TSV) {
            printf("%s\t%.4f\t%s\n", p->names[pred], probs[pred], text);
            continue;
        }
        printf("{\"text\": ");
        json_string(text, it->n);
        printf(", \"label\": ");
        json_string(p->names[pred], strlen(p->names[pred]));
        if (it->gold >= 0) {
            printf(", \"gold\": ");
            json_string(p->names[it->gold], strlen(p->names[it->gold]));
        }
        printf(", \"probs\": {");
        for (int k = 0; k < p->K; k++) {
            printf("%s", k ? ", " : "");
            json_string(p->names[k], strlen(p->names[k]));
            if (isfinite(probs[k])) printf(": %.6f", probs[k]);
            else printf(": null");
        }
        printf("}}\n");
    }
    return batch_written(p, "examples");
}

/* A text line as an item; gold-labelled or not, as the first non-empty line decided. */
static int classify_item(Predictor *p, char *line, size_t len, Arena *texts, TextItem *it) {
    char *tab = (char *)memchr(line, '\t', len);
    if (p->gold < 0 && len > 0) { /* the first non-empty line decides */
        if (tab) *tab = 0;
        p->gold = tab && name_index(p, line) >= 0;
        p->gold_line = p->in.line_no;
        if (tab && !p->gold) {
            fprintf(stderr, "note: %s:%ld: '%s' before the tab is not one of the model's classes (", p->in.name,
                    p->in.line_no, line);
            say_names(p);
            fprintf(stderr, "): every line is read as a text, tabs and all\n");
        }
        if (tab) *tab = '\t';
    }
    it->gold = -1;
    if (p->gold == 1 && len > 0) {
        if (!tab) {
            fprintf(stderr, "demo predict: %s:%ld: expected label<TAB>text, as line %ld is\n", p->in.name,
                    p->in.line_no, p->gold_line);
            return 0;
        }
        *tab = 0;
        it->gold = name_index(p, line);
        if (it->gold < 0) {
            fprintf(stderr, "demo predict: %s:%ld: the label '%s' is not one of the model's classes (", p->in.name,
                    p->in.line_no, line);
            say_names(p);
            fprintf(stderr, "): it was fine-tuned on other labels\n");
            return 0;
        }
        len -= (size_t)(tab + 1 - line);
        line = tab + 1;
    }
    it->n = len;
    it->text = arena_add(texts, line, len);
    if (it->text == SIZE_MAX) return fail("predict", GPT3_ERR_NOMEM), 0;
    it->gold = len > 0 ? it->gold : -1; /* "label<TAB>" alone: an empty text */
    return 1;
}

static int predict_classify(Predictor *p) {
    Arena texts = {NULL, 0, 0};
    TextItem *items = (TextItem *)malloc((size_t)p->batch * sizeof(TextItem));
    int count = 0, ok = items != NULL;
    char *line;
    size_t len;
    if (!ok) fail("predict", GPT3_ERR_NOMEM);
    while (ok && (line = reader_next(&p->in, &len)) != NULL) {
        ok = classify_item(p, line, len, &texts, &items[count++]);
        if (ok && count == p->batch) {
            ok = classify_batch(p, &texts, items, count);
            count = 0;
            texts.used = 0;
        }
    }
    if (ok && count > 0) ok = classify_batch(p, &texts, items, count);
    free(items);
    free(texts.data);
    return ok && !p->in.failed;
}

/* ---- ner */

typedef struct { size_t text; int word; } LineItem; /* word -1: a blank or -DOCSTART- line */
typedef struct { size_t token; int gold, tag; } WordItem; /* tag -1: past the context */
typedef struct { int first, n; } SentenceItem; /* its words: words[first .. first + n) */

typedef struct {
    Arena text;           /* the lines, and the words cut out of them        */
    LineItem *lines;
    WordItem *words;
    SentenceItem *sentences;
    int n_lines, n_words, n_sentences, cap_lines, cap_words, cap_sentences;
    int open;             /* the last sentence may have more words          */
} NerBatch;

/* The batch's sentences as rows of p->inputs, each word's first token in
   first (n_words), each sentence's token count in n_ids. Returns how many
   rows (sentences with words), -1 if out of memory. */
static int encode_sentences(Predictor *p, const NerBatch *nb, const char **words, int *first, int *n_ids) {
    int n = 0;
    for (int w = 0; w < nb->n_words; w++) words[w] = nb->text.data + nb->words[w].token;
    for (int s = 0; s < nb->n_sentences; s++) {
        const SentenceItem *si = &nb->sentences[s];
        int *ids;
        size_t count;
        if (si->n == 0) continue;
        if (gpt3_encode_words(&p->tok, words + si->first, si->n, &ids, &count, first + si->first) != GPT3_OK) return -1;
        n_ids[s] = (int)count;
        put_row(p, n++, ids, count);
        free(ids);
    }
    return n;
}

/* Each word's tag, read off its first token as fine-tuning trained it
   (the logits' argmax, as evaluate_task); -1 for a word that does not fit
   whole in the context. The gold tags go to the report as evaluate_task
   counts them: the tagged words, then -1 between sentences. */
static int tag_sentences(Predictor *p, NerBatch *nb) {
    const char **words = (const char **)malloc(((size_t)nb->n_words + 1) * sizeof(char *));
    int *first = (int *)malloc(((size_t)nb->n_words + 1) * sizeof(int));
    int *n_ids = (int *)malloc(((size_t)nb->n_sentences + 1) * sizeof(int)), T = 1, K = p->K;
    int n = words && first && n_ids ? encode_sentences(p, nb, words, first, n_ids) : -1;
    int ok = n >= 0 || (fail("predict", GPT3_ERR_NOMEM), 0);
    ok = ok && run_head(p, n, &T);
    for (int s = 0, b = 0; ok && s < nb->n_sentences; s++) {
        const SentenceItem *si = &nb->sentences[s];
        int untagged = 0;
        if (si->n == 0) continue;
        for (int w = si->first; w < si->first + si->n; w++) {
            int end = w + 1 < si->first + si->n ? first[w + 1] : n_ids[s];
            WordItem *wi = &nb->words[w];
            wi->tag = end <= p->lengths[b] ? argmax(p->m.head->logits + ((size_t)b * T + first[w]) * K, K) : -1;
            untagged += wi->tag < 0;
            if (wi->gold >= 0 && wi->tag >= 0) ok = ok && keep_gold(p, wi->gold, wi->tag);
        }
        if (p->gold == 1) ok = ok && keep_gold(p, -1, -1);
        if (!ok) fail("predict", GPT3_ERR_NOMEM);
        p->untagged += untagged;
        p->cut += untagged > 0;
        p->done++;
        b++;
    }
    free(words);
    free(first);
    free(n_ids);
    return ok;
}

static const char *tag_name(const Predictor *p, int tag) { return tag >= 0 ? p->names[tag] : "-"; }

static int ner_batch(Predictor *p, NerBatch *nb) {
    if (!tag_sentences(p, nb)) return 0;
    if (p->format == FORMAT_CONLL) { /* every line as it came, a token's with its tag added */
        for (int i = 0; i < nb->n_lines; i++) {
            const char *line = nb->text.data + nb->lines[i].text;
            int w = nb->lines[i].word;
            if (w < 0) printf("%s\n", line);
            else printf("%s%c%s\n", line, strchr(line, '\t') ? '\t' : ' ', tag_name(p, nb->words[w].tag));
        }
    } else { /* text: token<TAB>tag lines, a blank line after each sentence */
        for (int s = 0; s < nb->n_sentences; s++) {
            const SentenceItem *si = &nb->sentences[s];
            for (int w = si->first; w < si->first + si->n; w++)
                printf("%s\t%s\n", nb->text.data + nb->words[w].token, tag_name(p, nb->words[w].tag));
            printf("\n");
        }
    }
    nb->text.used = 0;
    nb->n_lines = nb->n_words = nb->n_sentences = 0;
    return batch_written(p, "sentences");
}

static int new_sentence(NerBatch *nb) {
    SentenceItem *grown = (SentenceItem *)grow(nb->sentences, &nb->cap_sentences, nb->n_sentences + 1, sizeof(SentenceItem));
    if (!grown) return fail("predict", GPT3_ERR_NOMEM), 0;
    nb->sentences = grown;
    nb->sentences[nb->n_sentences++] = (SentenceItem){nb->n_words, 0};
    return 1;
}

/* A word (n bytes at token) with its gold tag (or -1), in the open sentence
   or a new one. */
#define MAX_PREDICT_WORDS 65536 /* a sentence's: more is a file without blank lines */
static int add_word(Predictor *p, NerBatch *nb, const char *token, size_t n, int gold) {
    if (!nb->open && !new_sentence(nb)) return 0;
    nb->open = 1;
    if (nb->sentences[nb->n_sentences - 1].n == MAX_PREDICT_WORDS) {
        fprintf(stderr, "demo predict: %s:%ld: a sentence of more than %d words (a blank line missing?)\n", p->in.name,
                p->in.line_no, MAX_PREDICT_WORDS);
        return 0;
    }
    size_t at = arena_add(&nb->text, token, n);
    WordItem *grown = (WordItem *)grow(nb->words, &nb->cap_words, nb->n_words + 1, sizeof(WordItem));
    if (grown) nb->words = grown;
    if (at == SIZE_MAX || !grown) return fail("predict", GPT3_ERR_NOMEM), 0;
    nb->words[nb->n_words++] = (WordItem){at, gold, -1};
    nb->sentences[nb->n_sentences - 1].n++;
    return 1;
}

/* The gold tag (n bytes at tag) as the head's index; -1 (said) if unknown. */
static int gold_tag(const Predictor *p, const char *tag, size_t n) {
    char name[300];
    snprintf(name, sizeof(name), "%.*s", (int)(n < 299 ? n : 299), tag);
    int k = name_index(p, name);
    if (k >= 0) return k;
    fprintf(stderr, "demo predict: %s:%ld: the tag '%s' (the last column) is not one of the model's (", p->in.name,
            p->in.line_no, name);
    say_names(p);
    fprintf(stderr, "): it was fine-tuned on other tags\n");
    return -1;
}

/* A CoNLL line into the batch: a token (with its gold tag if the input has
   them), or a blank or -DOCSTART- line, which ends a sentence. */
static int conll_line(Predictor *p, NerBatch *nb, const char *line, size_t len) {
    size_t token = 0, token_n = 0, tag = 0, tag_n = 0;
    int fields = conll_columns(line, &token, &token_n, &tag, &tag_n), gold = -1;
    int boundary = fields == 0 || (token_n == 10 && memcmp(line + token, "-DOCSTART-", 10) == 0);
    size_t at = arena_add(&nb->text, line, len);
    LineItem *grown = (LineItem *)grow(nb->lines, &nb->cap_lines, nb->n_lines + 1, sizeof(LineItem));
    if (grown) nb->lines = grown;
    if (at == SIZE_MAX || !grown) return fail("predict", GPT3_ERR_NOMEM), 0;
    nb->lines[nb->n_lines++] = (LineItem){at, boundary ? -1 : nb->n_words};
    if (boundary) {
        nb->open = 0;
        return 1;
    }
    if (p->gold < 0) { /* the first token line decides */
        p->gold = fields >= 2;
        p->gold_line = p->in.line_no;
    }
    if ((fields >= 2) != p->gold) {
        fprintf(stderr, "demo predict: %s:%ld: %s, but line %ld %s: give every token its gold tag, or none\n",
                p->in.name, p->in.line_no, p->gold ? "a token without a tag" : "a tag column", p->gold_line,
                p->gold ? "has one" : "has none");
        return 0;
    }
    if (p->gold && (gold = gold_tag(p, line + tag, tag_n)) < 0) return 0;
    return add_word(p, nb, line + token, token_n, gold);
}

/* A plain text line: a sentence, its words split at spaces and tabs (an
   empty line: a sentence without words). */
static int text_line(Predictor *p, NerBatch *nb, const char *line) {
    if (!new_sentence(nb)) return 0;
    nb->open = 1;
    p->gold = 0;
    for (size_t i = 0; line[i];) {
        while (line[i] == ' ' || line[i] == '\t') i++;
        size_t start = i;
        while (line[i] && line[i] != ' ' && line[i] != '\t') i++;
        if (i > start && !add_word(p, nb, line + start, i - start, -1)) return 0;
    }
    p->empty += nb->sentences[nb->n_sentences - 1].n == 0;
    nb->open = 0;
    return 1;
}

static int predict_ner(Predictor *p) {
    NerBatch nb;
    char *line;
    size_t len;
    int ok = 1;
    memset(&nb, 0, sizeof(nb));
    while (ok && (line = reader_next(&p->in, &len)) != NULL) {
        ok = p->format == FORMAT_TEXT ? text_line(p, &nb, line) : conll_line(p, &nb, line, len);
        if (ok && !nb.open && nb.n_sentences >= p->batch) ok = ner_batch(p, &nb); /* full, its last sentence ended */
    }
    if (ok && (nb.n_lines > 0 || nb.n_sentences > 0)) ok = ner_batch(p, &nb);
    free(nb.text.data);
    free(nb.lines);
    free(nb.words);
    free(nb.sentences);
    return ok && !p->in.failed;
}

/* ---- generate */

typedef struct { int max_tokens; GPT3Sampler sampler; int seed; GPT3KVCache kv; Arena out; } Sampling;

/* The completion of one prompt (n bytes) into w->out: sampled token by
   token through the KV cache (a soft prompt goes in first by itself); it
   ends at <|endoftext|>, a newline, max_tokens or the context's end. */
static int complete(Predictor *p, Sampling *w, const char *prompt, size_t n) {
    int *ids, rc;
    size_t n_ids;
    w->out.used = 0;
    if (gpt3_encode(&p->tok, prompt, n, &ids, &n_ids) != GPT3_OK) return fail("predict", GPT3_ERR_NOMEM), 0;
    size_t keep = (size_t)(p->room - p->reserved), skip = n_ids > keep ? n_ids - keep : 0;
    p->cut += skip > 0; /* a long prompt keeps its end, as fine-tuning did */
    gpt3_kv_reset(&w->kv);
    gpt3_rng_seed(&w->sampler.rng, (uint64_t)w->seed);
    rc = GPT3_OK;
    for (size_t i = skip; rc == GPT3_OK && i < n_ids; i++) rc = gpt3_kv_forward(&p->m, &w->kv, ids[i]);
    free(ids);
    for (int made = 0; rc == GPT3_OK && made < w->max_tokens; made++) {
        int next = gpt3_sampler_sample(&w->sampler, w->kv.logits);
        size_t len;
        const unsigned char *bytes = gpt3_token_bytes(&p->tok, next, &len);
        if (next == p->tok.eot || !bytes) break;
        size_t upto = 0; /* the bytes before a line break ("\n" or "\r") */
        while (upto < len && bytes[upto] != '\n' && bytes[upto] != '\r') upto++;
        if (arena_add(&w->out, (const char *)bytes, upto) == SIZE_MAX) return fail("predict", GPT3_ERR_NOMEM), 0;
        w->out.used--; /* the bytes run on: drop the NUL arena_add put after them */
        if (upto < len || w->kv.pos >= p->m.config.max_seq_len) break;
        rc = gpt3_kv_forward(&p->m, &w->kv, next);
    }
    if (rc != GPT3_OK) return fail("predict", rc), 0;
    return 1;
}

static int predict_generate(Predictor *p, Sampling *w) {
    char *line;
    size_t len;
    int ok = 1;
    while (ok && (line = reader_next(&p->in, &len)) != NULL) {
        char *tab = (char *)memchr(line, '\t', len);
        size_t n = tab ? (size_t)(tab - line) : len;
        w->out.used = 0;
        if (n > 0 && !complete(p, w, line, n)) break;
        p->empty += n == 0;
        p->done += n > 0;
        if (p->format == FORMAT_TSV) {
            fwrite(w->out.data, 1, w->out.used, stdout);
            printf("\n");
        } else {
            printf("{\"prompt\": ");
            json_string(line, n);
            printf(", \"completion\": ");
            json_string(w->out.data, w->out.used);
            printf("}\n");
        }
        ok = batch_written(p, "prompts");
    }
    return ok && !p->in.failed;
}

/* ---- the command */

/* Why gpt3_load_finetuned failed, piece by piece, with the fix. */
static void say_not_loaded(const char *model, int rc) {
    GPT3 m;
    char head[1024], enc[1024], bpe[1024];
    const char *slash = strrchr(model, '/');
    int dir = slash ? (int)(slash - model + 1) : 0;
    snprintf(head, sizeof(head), "%s.head", model);
    snprintf(enc, sizeof(enc), "%.*sencoder.json", dir, model);
    snprintf(bpe, sizeof(bpe), "%.*svocab.bpe", dir, model);
    int own = gpt3_load(&m, model);
    if (own != GPT3_OK) {
        fprintf(stderr, "demo predict: %s: %s\n", model, gpt3_strerror(own));
    } else if (file_exists(head) && (own = gpt3_head_load(&m, head)) != GPT3_OK) {
        fprintf(stderr, "demo predict: %s: %s\n  a head goes with the model it was fine-tuned with: give the "
                "model.ckpt that ./demo finetune --out saved beside it\n", head, gpt3_strerror(own));
    } else if (file_exists(enc) != file_exists(bpe)) {
        fprintf(stderr, "demo predict: %s has %s beside it but not %s: copy it there (./demo finetune --out "
                "writes both)\n", model, file_exists(enc) ? "encoder.json" : "vocab.bpe",
                file_exists(enc) ? "vocab.bpe" : "encoder.json");
    } else if (!file_exists(enc) && rc == GPT3_ERR_MISMATCH) {
        fprintf(stderr, "demo predict: %s has %d tokens, but no encoder.json and vocab.bpe beside it (bytes are "
                "256): copy them there from the folder ./demo finetune --out wrote\n", model, m.config.vocab_size);
    } else {
        fprintf(stderr, "demo predict: %s / %s: %s\n", enc, bpe, gpt3_strerror(rc));
    }
    gpt3_free(&m);
}

/* The model, and the head --task needs (the head's kind if --task is not
   given). 0 if it cannot be used for the task (said, with the fix). */
static int predict_open(Predictor *p, const char *model, const char *task) {
    static const char *kinds[3] = {"classify (binary)", "classify", "ner (tags)"};
    if (!file_exists(model)) {
        fprintf(stderr, "demo predict: no model at %s\n", model);
        say_no_checkpoint(model, "fine-tune one first (./demo finetune --task classify --train ... --out DIR), then "
                          "give --model DIR/model.ckpt");
        return 0;
    }
    int rc = gpt3_load_finetuned(&p->m, &p->tok, model);
    if (rc != GPT3_OK) { say_not_loaded(model, rc); return 0; }
    const GPT3Head *h = p->m.head;
    int head_task = !h ? TASK_GENERATE : h->kind == GPT3_HEAD_TAGS ? TASK_NER : TASK_CLASSIFY;
    p->task = head_task;
    for (int k = 0; task && k < 3; k++) if (strcmp(task, task_names[k]) == 0) p->task = k;
    if (p->task != TASK_GENERATE && !h) {
        fprintf(stderr, "demo predict: --task %s needs a task head, and %s has none beside it (%s.head): it was "
                "fine-tuned to generate (leave --task out), or copy its .head file there\n", task, model, model);
        return 0;
    }
    if (p->task != head_task) {
        fprintf(stderr, "demo predict: %s.head is a %s head: leave --task out, or give --task %s", model,
                kinds[h->kind], task_names[head_task]);
        if (p->task == TASK_GENERATE) fprintf(stderr, " (./demo generate --model %s samples its language model anyway)", model);
        fprintf(stderr, "\n");
        return 0;
    }
    p->room = context_room(&p->m);
    p->K = gpt3_head_outputs(&p->m);
    if (p->K == 0) return 1;
    p->names = (const char **)malloc((size_t)p->K * sizeof(char *));
    p->numbers = (char *)malloc((size_t)p->K * 12);
    if (!p->names || !p->numbers) return fail("predict", GPT3_ERR_NOMEM), 0;
    for (int k = 0; k < p->K; k++) { /* an old head file has no names: the class index */
        snprintf(p->numbers + 12 * k, 12, "%d", k);
        p->names[k] = h->num_names == p->K ? h->names[k] : p->numbers + 12 * k;
    }
    if (p->task == TASK_NER && h->num_names != p->K)
        fprintf(stderr, "note: %s.head names no tags (an older file): tags are printed as numbers, and no entity "
                "report can be made\n", model);
    return 1;
}

/* The report on the gold labels: stderr, and report_path if given. */
static int predict_report(Predictor *p, const char *report_path) {
    GPT3Report r;
    int ner = p->task == TASK_NER;
    if (ner && p->m.head->num_names != p->K) return 1;
    int rc = ner ? gpt3_report_entities(&r, p->gold_ids, p->pred_ids, (size_t)p->n_gold, p->names, p->K)
                 : gpt3_report_classes(&r, p->gold_ids, p->pred_ids, (size_t)p->n_gold, p->K);
    const char *const *names = ner ? NULL : p->names;
    char probe[1];
    size_t size = rc == GPT3_OK ? gpt3_report_format(&r, names, probe, 1) + 1 : 0; /* as long as it needs */
    char *text = rc == GPT3_OK ? (char *)malloc(size) : NULL;
    if (!text) { gpt3_report_free(&r); return fail("the report", rc == GPT3_OK ? GPT3_ERR_NOMEM : rc), 0; }
    gpt3_report_format(&r, names, text, size);
    char title[1100];
    snprintf(title, sizeof(title), "\n-- %s: the gold %s of %ld %s --\n", p->in.name, ner ? "tags" : "labels",
             p->done, ner ? "sentences" : "examples");
    fprintf(stderr, "%s%s", title, text);
    FILE *f = report_path ? fopen(report_path, "w") : NULL;
    int ok = !report_path || (f && fprintf(f, "%s%s", title, text) >= 0);
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "demo predict: cannot write %s: %s\n", report_path, strerror(errno));
    gpt3_report_free(&r);
    free(text);
    return ok;
}

/* What happened, on stderr: the notes, and one summary line. */
static void predict_summary(const Predictor *p, const char *report_path) {
    const char *unit = p->task == TASK_NER ? "sentences" : p->task == TASK_GENERATE ? "prompts" : "examples";
    int one = p->done == 1; /* "1 example" */
    double seconds = now_seconds() - p->t0;
    if (p->progress > 0) fprintf(stderr, "\r%*s\r", p->progress, ""); /* the progress line, cleared */
    if (p->empty)
        fprintf(stderr, "note: %ld empty %s: %s\n", p->empty, p->empty == 1 ? "line" : "lines",
                p->task == TASK_NER ? "an empty sentence each (a blank line alone)" : "an empty line each in the output");
    if (p->cut && p->task == TASK_NER)
        fprintf(stderr, "note: %ld %s longer than the context (%d tokens): %s last %ld words are not tagged ('-')%s\n",
                p->cut, p->cut == 1 ? "sentence is" : "sentences are", p->room, p->cut == 1 ? "its" : "their", p->untagged,
                p->gold == 1 ? " nor scored, as fine-tuning cut them" : "");
    if (p->cut && p->task == TASK_CLASSIFY)
        fprintf(stderr, "note: %ld %s longer than the context (%d tokens): each keeps its first tokens, as fine-tuning "
                "did\n", p->cut, p->cut == 1 ? "text is" : "texts are", p->room);
    if (p->cut && p->task == TASK_GENERATE)
        fprintf(stderr, "note: %ld %s longer than the context leaves (%d tokens, %d of them kept for the completion): "
                "each keeps its last %d tokens, as fine-tuning kept a prompt's end\n", p->cut,
                p->cut == 1 ? "prompt is" : "prompts are", p->room, p->reserved, p->room - p->reserved);
    if (report_path && p->gold != 1)
        fprintf(stderr, "note: %s has no gold labels: no report, %s not written\n", p->in.name, report_path);
    fprintf(stderr, "predict: %ld %.*s in %.1f s (%.0f %s/s)\n", p->done, (int)strlen(unit) - one, unit, seconds,
            p->done / (seconds + 1e-9), unit);
}

static int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *input = NULL, *task = NULL, *format = NULL, *report = NULL;
    int batch = UNSET, max_tokens = UNSET, top_k = UNSET, seed = UNSET;
    float temperature = UNSET_FLOAT, top_p = UNSET_FLOAT;
    Option opts[] = {
        {"model", OPT_STRING, &model, "the fine-tuned model: DIR/model.ckpt of ./demo finetune --out DIR"},
        {"input", OPT_STRING, &input, "the examples, a line each (default: stdin)"},
        {"task", OPT_STRING, &task, "classify, ner or generate (default: the head's; no head: generate)"},
        {"format", OPT_STRING, &format, "classify: tsv or jsonl; ner: conll or text; generate: tsv or jsonl (default: the first)"},
        {"batch", OPT_INT, &batch, "examples (sentences) run at once, and written at once (default 32)"},
        {"report", OPT_STRING, &report, "also write the gold labels' report to this file"},
        {"max-tokens", OPT_INT, &max_tokens, "generate: tokens a completion has at most (default 64)"},
        {"temperature", OPT_FLOAT, &temperature, "generate: sampling temperature (default 0: always the likeliest)"},
        {"top-k", OPT_INT, &top_k, "generate: sample from the k likeliest tokens (default 0: all)"},
        {"top-p", OPT_FLOAT, &top_p, "generate: sample from the likeliest tokens holding this much probability (default 1)"},
        {"seed", OPT_INT, &seed, "generate: the seed every prompt's sampling starts from (default 42)"},
    };
    int rc = parse_flags("predict",
        "Predicts with a model that ./demo finetune saved: examples a line each from --input (or stdin),\n"
        "predictions a line each to stdout, --batch at a time (--batch 1: each line as it comes).\n"
        "  classify: a text a line -> label<TAB>probability<TAB>text; --format jsonl: {\"text\", \"label\",\n"
        "    \"probs\": every class's} (non-UTF-8 bytes become U+FFFD). If the first non-empty line is\n"
        "    label<TAB>text with one of the model's classes, the input is the training TSV: every line\n"
        "    must be, and the report on its labels goes to stderr (and --report).\n"
        "  ner: CoNLL (token lines, CoNLL-2003's columns too; blank or -DOCSTART- lines between sentences)\n"
        "    -> the same lines, the predicted tag added as a last column ('-': past the context). If the\n"
        "    first token line has a tag column (its last), every line must: the entity report follows.\n"
        "    --format text: a sentence a line, words split at spaces -> token<TAB>tag lines, a blank\n"
        "    line after each sentence.\n"
        "  generate: a prompt a line (or prompt<TAB>completion: the prompt only) -> its completion on a\n"
        "    line: it ends at a newline, <|endoftext|> or --max-tokens.\n"
        "An empty line gives an empty line; a text longer than the context keeps its first tokens\n"
        "(a prompt its last); notes on stderr count both.",
        argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (!model) {
        fprintf(stderr, "demo predict: give --model DIR/model.ckpt, a model ./demo finetune --out DIR saved\n");
        return 1;
    }
    int t = -1, f = -1;
    for (int k = 0; task && k < 3; k++) if (strcmp(task, task_names[k]) == 0) t = k;
    if (task && t < 0) { fprintf(stderr, "demo predict: --task must be classify, ner or generate (got '%s')\n", task); return 1; }
    for (int k = 0; format && k < 4; k++) if (strcmp(format, format_names[k]) == 0) f = k;
    if (format && f < 0) { fprintf(stderr, "demo predict: --format must be tsv, jsonl, conll or text (got '%s')\n", format); return 1; }
    if ((batch != UNSET && !check_range("predict", "batch", batch, 1, 4096)) ||
        !check_unset_or("predict", "max-tokens", max_tokens, 0) || !check_unset_or("predict", "top-k", top_k, 0) ||
        !(isnan(top_p) || check_range("predict", "top-p", top_p, 1e-6, 1)) ||
        !(isnan(temperature) || check_range("predict", "temperature", temperature, 0, 100)))
        return 1;

    Predictor p;
    memset(&p, 0, sizeof(p));
    p.gold = -1;
    int ok = predict_open(&p, model, task);
    const char *sampling = max_tokens != UNSET ? "--max-tokens" : !isnan(temperature) ? "--temperature"
                         : top_k != UNSET ? "--top-k" : !isnan(top_p) ? "--top-p" : seed != UNSET ? "--seed" : NULL;
    int fits[3][4] = {{1, 1, 0, 0}, {0, 0, 1, 1}, {1, 1, 0, 0}}; /* the formats of each task */
    if (ok && f >= 0 && !fits[p.task][f]) {
        fprintf(stderr, "demo predict: --format %s is not one of %s's: %s\n", format, task_names[p.task],
                p.task == TASK_NER ? "conll or text" : "tsv or jsonl");
        ok = 0;
    } else if (ok && p.task != TASK_GENERATE && sampling) {
        fprintf(stderr, "demo predict: %s is for --task generate (this model's task is %s)\n", sampling,
                task_names[p.task]);
        ok = 0;
    } else if (ok && p.task == TASK_GENERATE && (batch != UNSET || report)) {
        fprintf(stderr, "demo predict: --%s is for classify and ner (generate writes one prompt's completion at a time, "
                "and has no report)\n", report ? "report" : "batch");
        ok = 0;
    }
    p.format = f >= 0 ? f : p.task == TASK_NER ? FORMAT_CONLL : FORMAT_TSV;
    p.batch = batch != UNSET ? batch : 32;
    size_t rows = p.task == TASK_NER ? (size_t)p.batch * p.room : (size_t)p.batch;
    if (ok && p.task != TASK_GENERATE) {
        p.inputs = (int *)malloc((size_t)p.batch * p.room * sizeof(int));
        p.lengths = (int *)malloc((size_t)p.batch * sizeof(int));
        p.probs = (float *)malloc(rows * p.K * sizeof(float));
        if (!p.inputs || !p.lengths || !p.probs) {
            fail("predict", GPT3_ERR_NOMEM);
            ok = 0;
        }
    }
    Sampling w;
    memset(&w, 0, sizeof(w));
    w.max_tokens = max_tokens != UNSET ? max_tokens : 64;
    w.seed = seed != UNSET ? seed : 42;
    p.reserved = w.max_tokens < p.room / 2 ? w.max_tokens : p.room / 2; /* room for the completion */
    if (ok && p.task == TASK_GENERATE &&
        ((rc = gpt3_sampler_init(&w.sampler, p.m.config.vocab_size, isnan(temperature) ? 0.0f : temperature,
                                 top_k != UNSET ? top_k : 0, isnan(top_p) ? 1.0f : top_p, (uint64_t)w.seed)) != GPT3_OK ||
         (rc = gpt3_kv_init(&w.kv, &p.m)) != GPT3_OK)) {
        fail("predict", rc);
        ok = 0;
    }
    if (ok) ok = reader_open(&p.in, input) == 0;
    if (ok) {
        p.t0 = p.shown = now_seconds();
        ok = p.task == TASK_CLASSIFY ? predict_classify(&p) : p.task == TASK_NER ? predict_ner(&p)
                                                                                 : predict_generate(&p, &w);
        if (ok) predict_summary(&p, report);
        if (ok && p.gold == 1) ok = predict_report(&p, report);
        reader_close(&p.in);
    }
    gpt3_sampler_free(&w.sampler);
    gpt3_kv_free(&w.kv);
    free(w.out.data);
    free(p.inputs); free(p.lengths); free(p.probs);
    free(p.gold_ids); free(p.pred_ids);
    free(p.names); free(p.numbers);
    gpt3_tokenizer_free(&p.tok);
    gpt3_free(&p.m);
    return !ok;
}

/* ------------------------------------------------------------------------ */
/* attention: every head's attention map, drawn                             */

/* The model reads the tokens once, B = 1 (a loaded model has training 0:
   no dropout), and m.acts.att then holds every layer's softmax
   probabilities, one layer after the other, each (B, NH, T, span): span =
   T for a dense layer, min(W, T) for a banded one (gpt3.h's
   GPT3Activations). Row t of a head holds the keys s = start(t) .. t,
   start(t) = max(0, t - span + 1), in its first t - start(t) + 1 places,
   then zeros: the first rows of a banded layer (t < span - 1) start at key
   0, not at t - span + 1. gpt3.h's two attention forwards (the reference
   and the blocked one) both write it so. */
typedef struct {
    const GPT3Config *cfg;
    const float *att;   /* m.acts.att after gpt3_forward(m, tokens, NULL, 1, T) */
    const int *tokens;  /* (T) what the model read: a soft prompt's N vectors
                           first (as -1 .. -N), then the tokens               */
    int T;
    int prompt;         /* N: positions 0 .. N-1 are the soft prompt's         */
} AttentionMaps;

/* Row t of head h in layer l: the probabilities of the keys *start .. t,
   read with the header's own layout functions (a layer's window, W or T,
   is also its rows' span), so the maps read what the forward wrote. */
static const float *attention_row(const AttentionMaps *a, int l, int h, int t, int *start) {
    int window = gpt3__layer_window(a->cfg, l, a->T);
    *start = gpt3__attention_start(window, t);
    return a->att + gpt3__att_offset(a->cfg, l, 1, a->T) + ((size_t)h * a->T + t) * window;
}

/* Olsson et al. (2022)'s induction score of head (l, h) on these tokens:
   a query t whose token came before, at positions s with s + 1 < t, gives
   sum_s att[t, s + 1], its attention to the tokens that followed those
   copies; the score is the mean over such queries (NAN if there are none).
   s + 1 = t is left out, so that a head looking at itself never counts. A
   head that looks up what came after the current token last time scores
   near 1 on --repeat's tokens. In a banded layer a key out of the window
   has probability 0. */
static double induction_score(const AttentionMaps *a, int l, int h) {
    double sum = 0;
    int queries = 0;
    for (int t = 0; t < a->T; t++) {
        int start, repeated = 0;
        const float *row = attention_row(a, l, h, t, &start);
        double to_next = 0;
        for (int s = 0; s + 1 < t; s++) {
            if (a->tokens[s] != a->tokens[t]) continue;
            repeated = 1;
            if (s + 1 >= start) to_next += row[s + 1 - start];
        }
        sum += to_next;
        queries += repeated;
    }
    return queries ? sum / queries : NAN;
}

/* ---- the picture */

#define ATTENTION_LEVELS 64 /* the colours drawn: sqrt(p) rounded to 1/64 */

/* ColorBrewer's "Blues", white to dark blue: steps even to the eye. */
static const unsigned char blues[9][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239},
                                          {158, 202, 225}, {107, 174, 214}, {66, 146, 198},
                                          {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};

/* The scale's colour at u in [0, 1] as "#rrggbb". */
static void blues_colour(double u, char hex[16]) {
    double x = u * 8;
    int i = x >= 8 ? 7 : x <= 0 ? 0 : (int)x, c[3];
    double f = x - i;
    for (int k = 0; k < 3; k++) c[k] = (int)(blues[i][k] + f * (blues[i + 1][k] - blues[i][k]) + 0.5);
    snprintf(hex, 16, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
}

/* The colour level of probability p: sqrt(p), so that a head that spreads
   its attention thinly still shows. Level 0 is the scale's white. */
static int attention_level(float p) {
    if (!(p > 0)) return 0; /* a NaN too */
    if (p >= 1) return ATTENTION_LEVELS;
    return (int)(sqrt(p) * ATTENTION_LEVELS + 0.5);
}

/* Bytes as XML text: <, >, &, " escaped; a newline shown as U+21B5, a tab
   as U+2192, a space as U+00B7 if show_spaces (a token's leading space),
   another control byte or a byte that is not UTF-8 as \xNN; at most
   max_chars characters, then U+2026. */
static void svg_text(FILE *f, const unsigned char *s, size_t n, int max_chars, int show_spaces) {
    for (size_t i = 0, chars = 0; i < n; chars++) {
        unsigned char c = s[i];
        int len = utf8_length(s + i, n - i);
        if (chars == (size_t)max_chars) { fputs("\xe2\x80\xa6", f); return; }
        if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '&') fputs("&amp;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == ' ' && show_spaces) fputs("\xc2\xb7", f);
        else if (c == '\n') fputs("\xe2\x86\xb5", f);
        else if (c == '\t') fputs("\xe2\x86\x92", f);
        else if (c < 0x20 || c == 0x7f || !len) fprintf(f, "\\x%02X", c);
        else fwrite(s + i, 1, (size_t)len, f);
        i += len ? (size_t)len : 1;
    }
}

static void svg_token(FILE *f, const GPT3Tokenizer *tok, int id, int max_chars) {
    size_t len;
    const unsigned char *bytes = gpt3_token_bytes(tok, id, &len);
    if (bytes) svg_text(f, bytes, len, max_chars, 1);
    else if (id < 0) fprintf(f, "[p%d]", -id); /* a soft prompt's vector */
    else fprintf(f, "#%d", id);
}

/* How a map is drawn: its size, and token labels if they fit. */
typedef struct {
    FILE *f;
    const AttentionMaps *a;
    const GPT3Tokenizer *tok;
    double size;     /* pixels across and down                 */
    double font;     /* of the token labels; 0: no labels      */
    int label_chars; /* the most characters a label shows      */
} MapStyle;

/* The room the labels take beside the map and below it. */
static double label_room(const MapStyle *st) { return st->font > 0 ? st->label_chars * st->font * 0.62 + 6 : 0; }

/* The map's cells of one colour level as one path, in token units (x: the
   key, y: the query); a run of them in a row is one rectangle. */
static void svg_level(const MapStyle *st, int l, int h, int level) {
    char colour[16];
    int open = 0;
    for (int t = 0; t < st->a->T; t++) {
        int start;
        const float *row = attention_row(st->a, l, h, t, &start);
        for (int s = start; s <= t; s++) {
            if (attention_level(row[s - start]) != level) continue;
            int end = s;
            while (end < t && attention_level(row[end + 1 - start]) == level) end++;
            if (!open) {
                blues_colour((double)level / ATTENTION_LEVELS, colour);
                fprintf(st->f, "<path fill=\"%s\" d=\"", colour);
                open = 1;
            }
            fprintf(st->f, "M%d %dh%dv1h-%dz", s, t, end - s + 1, end - s + 1);
            s = end;
        }
    }
    if (open) fputs("\"/>\n", st->f);
}

/* Token labels: the queries down the left of the map at (x, y), the keys
   along its foot, written downwards. */
static void svg_map_labels(const MapStyle *st, double x, double y) {
    double cell = st->size / st->a->T;
    fprintf(st->f, "<g font-size=\"%.1f\" fill=\"#333\">\n", st->font);
    for (int t = 0; t < st->a->T; t++) {
        fprintf(st->f, "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.35em\" text-anchor=\"end\">", x - 3, y + (t + 0.5) * cell);
        svg_token(st->f, st->tok, st->a->tokens[t], st->label_chars);
        fputs("</text>\n", st->f);
    }
    for (int s = 0; s < st->a->T; s++) {
        fprintf(st->f, "<text transform=\"translate(%.1f %.1f) rotate(90)\" dy=\"0.35em\">", x + (s + 0.5) * cell,
                y + st->size + 3);
        svg_token(st->f, st->tok, st->a->tokens[s], st->label_chars);
        fputs("</text>\n", st->f);
    }
    fputs("</g>\n", st->f);
}

/* Head h of layer l, its corner at (x, y): every cell hatched (masked),
   then the cells a query may see in the scale's white, a row at a time
   (the triangle of a dense layer, the band of a banded one), then the
   cells of each colour; in token units, scaled to the map's size. */
static void svg_map(const MapStyle *st, int l, int h, double x, double y) {
    FILE *f = st->f;
    char white[16];
    blues_colour(0, white);
    fprintf(f, "<g class=\"map\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"url(#masked)\"/>\n",
            x, y, st->size, st->size);
    fprintf(f, "<g transform=\"translate(%.1f %.1f) scale(%.5f)\" shape-rendering=\"crispEdges\">\n", x, y,
            st->size / st->a->T);
    fprintf(f, "<path class=\"seen\" data-layer=\"%d\" data-head=\"%d\" fill=\"%s\" d=\"", l, h, white);
    for (int t = 0; t < st->a->T; t++) {
        int start;
        attention_row(st->a, l, h, t, &start);
        fprintf(f, "M%d %dh%dv1h-%dz", start, t, t - start + 1, t - start + 1);
    }
    fputs("\"/>\n", f);
    for (int level = 1; level <= ATTENTION_LEVELS; level++) svg_level(st, l, h, level);
    fputs("</g>\n", f);
    if (st->font > 0) svg_map_labels(st, x, y);
    fputs("</g>\n", f);
}

/* The hatching of masked cells and the colour scale's gradient. */
static void svg_attention_defs(FILE *f) {
    char colour[16];
    fputs("<defs>\n<pattern id=\"masked\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\">"
          "<rect width=\"6\" height=\"6\" fill=\"#e8e6e3\"/>"
          "<path d=\"M0 6L6 0M-1 1L1 -1M5 7L7 5\" stroke=\"#b5b2ad\" stroke-width=\"1\"/></pattern>\n"
          "<linearGradient id=\"scale\">", f);
    for (int i = 0; i <= 8; i++) {
        blues_colour(i / 8.0, colour);
        fprintf(f, "<stop offset=\"%g\" stop-color=\"%s\"/>", i / 8.0, colour);
    }
    fputs("</linearGradient>\n</defs>\n", f);
}

/* The colour scale, a probability p at sqrt(p) along it, and the hatching's key. */
static void svg_legend(FILE *f, double x, double y) {
    static const double ticks[] = {0, 0.01, 0.05, 0.2, 0.5, 1};
    double width = 240;
    fprintf(f, "<g font-size=\"10\" fill=\"#333\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"12\" "
            "fill=\"url(#scale)\" stroke=\"#999\" stroke-width=\"0.5\"/>\n", x, y, width);
    for (int i = 0; i < COUNT(ticks); i++) {
        double tx = x + sqrt(ticks[i]) * width;
        fprintf(f, "<path d=\"M%.1f %.1fv4\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                tx, y + 12, tx, y + 26, ticks[i]);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">attention probability (square-root scale)</text>\n", x + width + 10, y + 10);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"url(#masked)\" stroke=\"#999\" "
            "stroke-width=\"0.5\"/>\n<text x=\"%.1f\" y=\"%.1f\">masked: a key the query cannot see</text>\n</g>\n",
            x + width + 230, y, x + width + 248, y + 10);
}

/* The title: the model, the start of the text, what the picture shows. */
static void svg_attention_title(FILE *f, const char *model, const AttentionMaps *a, const GPT3Tokenizer *tok,
                                const char *shows) {
    unsigned char *text = NULL;
    size_t n = 0;
    fputs("<text x=\"20\" y=\"26\" font-size=\"15\" font-weight=\"bold\">Attention of ", f);
    svg_text(f, (const unsigned char *)model, strlen(model), 60, 0);
    fprintf(f, a->prompt ? " on %d soft prompt vectors and" : " on", a->prompt);
    fprintf(f, " %d tokens</text>\n<text x=\"20\" y=\"46\" font-size=\"11\" fill=\"#333\">\"", a->T - a->prompt);
    if (gpt3_decode(tok, a->tokens + a->prompt, (size_t)(a->T - a->prompt), &text, &n) == GPT3_OK)
        svg_text(f, text, n, 110, 0);
    free(text);
    fprintf(f, "\"</text>\n<text x=\"20\" y=\"64\" font-size=\"11\" fill=\"#333\">%s</text>\n", shows);
}

/* The name of layer l's kind, e.g. "banded, W 32". */
static void layer_kind(const AttentionMaps *a, int l, char *out, size_t size) {
    int window = gpt3__layer_window(a->cfg, l, a->T);
    if (window < a->T) snprintf(out, size, "banded, W %d", window);
    else snprintf(out, size, "dense");
}

static void score_text(double score, char out[32]) {
    if (isnan(score)) snprintf(out, 32, "n/a");
    else snprintf(out, 32, "%.2f", score);
}

#define ATTENTION_TOP 126 /* the title and the legend above the maps */

/* Every head of every layer: a row a layer, a column a head, each map
   titled with its induction score. *width and *height: the picture's size
   (with f NULL, only those are worked out). */
static void svg_grid(MapStyle *st, const double *scores, double *width, double *height) {
    int L = st->a->cfg->num_layers, NH = st->a->cfg->num_heads;
    double room = label_room(st), col = room + st->size + 24, rowh = 40 + st->size + room + 16;
    *width = 40 + NH * col;
    *height = ATTENTION_TOP + L * rowh;
    for (int l = 0; st->f && l < L; l++) {
        char kind[48], score[32];
        double y = ATTENTION_TOP + l * rowh + 36;
        layer_kind(st->a, l, kind, sizeof(kind));
        fprintf(st->f, "<text transform=\"translate(22 %.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\" "
                "font-weight=\"bold\">layer %d: %s</text>\n", y + st->size / 2, l, kind);
        for (int h = 0; h < NH; h++) {
            double x = 40 + h * col + room;
            score_text(scores[l * NH + h], score);
            fprintf(st->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">layer %d, head %d</text>\n"
                    "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">induction %s</text>\n",
                    x, y - 20, l, h, x, y - 6, score);
            svg_map(st, l, h, x, y);
        }
    }
}

/* One head, large, with token labels on both axes. */
static void svg_one(MapStyle *st, int l, int h, double score, double *width, double *height) {
    double room = label_room(st), x = 40 + room, y = ATTENTION_TOP + 40;
    *width = x + st->size + 30;
    *height = y + st->size + room + 24;
    if (!st->f) return;
    char kind[48], text[32];
    layer_kind(st->a, l, kind, sizeof(kind));
    score_text(score, text);
    fprintf(st->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">layer %d (%s), head %d: "
            "induction %s</text>\n", x, y - 26, l, kind, h, text);
    fprintf(st->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">keys \xe2\x86\x92</text>\n"
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\" text-anchor=\"end\">queries "
            "\xe2\x86\x93</text>\n", x, y - 8, x - 4, y - 8);
    svg_map(st, l, h, x, y);
}

/* The drawing's sizes: a grid's maps side by side (labels only where a
   token has 8 pixels), one map large (labels from 5 pixels a token). */
static MapStyle attention_style(const AttentionMaps *a, const GPT3Tokenizer *tok, int one) {
    MapStyle st = {NULL, a, tok, 0, 0, one ? 14 : 6};
    double lo = one ? 320 : 110, hi = one ? 860 : 240, want = one ? 16.0 * a->T : 960.0 / a->cfg->num_heads;
    st.size = want < lo ? lo : want > hi ? hi : want;
    double cell = st.size / a->T;
    if (cell >= (one ? 5 : 8)) st.font = cell * 0.8 < (one ? 12 : 10) ? cell * 0.8 : (one ? 12 : 10);
    return st;
}

/* The picture: every map (only_l < 0), or head (only_l, only_h). */
static int write_attention_svg(const char *path, const char *model, const AttentionMaps *a,
                               const GPT3Tokenizer *tok, const double *scores, int only_l, int only_h) {
    int one = only_l >= 0;
    MapStyle st = attention_style(a, tok, one);
    double width, height, score = one ? scores[only_l * a->cfg->num_heads + only_h] : 0;
    if (one) svg_one(&st, only_l, only_h, score, &width, &height);
    else svg_grid(&st, scores, &width, &height);
    if (width < 760) width = 760;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "demo attention: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    st.f = f;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
            "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
            width, height, width, height);
    svg_attention_defs(f);
    fputs("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    svg_attention_title(f, model, a, tok, one ? "queries down, keys across"
                        : "rows: layers, columns: heads; in each map queries go down, keys across");
    svg_legend(f, 20, 78);
    if (one) svg_one(&st, only_l, only_h, score, &width, &height);
    else svg_grid(&st, scores, &width, &height);
    fputs("</svg>\n", f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "demo attention: writing %s failed: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* ---- the numbers */

/* "layer head query key prob" for every cell drawn (none that is masked):
   the numbers behind the picture, for tests and other tools. */
static int write_attention_dump(const char *path, const AttentionMaps *a, int only_l, int only_h) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "demo attention: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    fputs("layer\thead\tquery\tkey\tprob\n", f);
    for (int l = 0; l < a->cfg->num_layers; l++)
        for (int h = 0; h < a->cfg->num_heads; h++)
            for (int t = 0; (only_l < 0 || (l == only_l && h == only_h)) && t < a->T; t++) {
                int start;
                const float *row = attention_row(a, l, h, t, &start);
                for (int s = start; s <= t; s++) fprintf(f, "%d\t%d\t%d\t%d\t%.9g\n", l, h, t, s, row[s - start]);
            }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "demo attention: writing %s failed: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

typedef struct { int layer, head; double score; } HeadScore;

/* Best first; n/a last; ties by layer, then head. */
static int by_induction(const void *x, const void *y) {
    const HeadScore *p = (const HeadScore *)x, *q = (const HeadScore *)y;
    int p_na = isnan(p->score), q_na = isnan(q->score);
    if (p_na != q_na) return p_na - q_na;
    if (!p_na && p->score != q->score) return p->score < q->score ? 1 : -1;
    return p->layer != q->layer ? p->layer - q->layer : p->head - q->head;
}

/* The table of induction scores on stdout, best first. */
static int print_induction_table(const AttentionMaps *a, const double *scores) {
    int n = a->cfg->num_layers * a->cfg->num_heads;
    HeadScore *rows = (HeadScore *)malloc((size_t)n * sizeof(HeadScore));
    if (!rows) return fail("attention", GPT3_ERR_NOMEM);
    for (int i = 0; i < n; i++) {
        rows[i].layer = i / a->cfg->num_heads;
        rows[i].head = i % a->cfg->num_heads;
        rows[i].score = scores[i];
    }
    qsort(rows, (size_t)n, sizeof(HeadScore), by_induction);
    printf("layer  head  induction\n");
    for (int i = 0; i < n; i++) {
        if (isnan(rows[i].score)) printf("%5d %5d %10s\n", rows[i].layer, rows[i].head, "n/a");
        else printf("%5d %5d %10.4f\n", rows[i].layer, rows[i].head, rows[i].score);
    }
    if (isnan(rows[0].score)) fprintf(stderr, "[no token of the text comes back: every induction score is n/a]\n");
    else fprintf(stderr, "[the best induction head: layer %d, head %d (%.2f)]\n", rows[0].layer, rows[0].head, rows[0].score);
    free(rows);
    return 0;
}

/* ---- the command */

typedef struct {
    const char *model, *text, *out, *dump, *encoder, *bpe;
    int layer, head, repeat, seed;
} AttentionArgs;

/* The flags on their own: one source of tokens, both of --layer and --head or neither. */
static int check_attention_args(const AttentionArgs *a) {
    if (a->text && a->repeat != UNSET) {
        fprintf(stderr, "demo attention: give --text or --repeat, not both\n");
        return 1;
    }
    if (!a->text && a->repeat == UNSET) {
        fprintf(stderr, "demo attention: give the text to look at: --text \"...\" (or --repeat N for N random tokens twice)\n");
        return 1;
    }
    if (a->text && !a->text[0]) {
        fprintf(stderr, "demo attention: --text is empty: give a text of one token or more\n");
        return 1;
    }
    if ((a->layer == UNSET) != (a->head == UNSET)) {
        fprintf(stderr, "demo attention: give both --layer and --head (one map), or neither (every map)\n");
        return 1;
    }
    return !check_unset_or("attention", "repeat", a->repeat, 1) || !check_unset_or("attention", "layer", a->layer, 0) ||
           !check_unset_or("attention", "head", a->head, 0);
}

/* --layer and --head within the model, and a picture of a sensible size. */
static int check_attention_model(const AttentionArgs *a, const GPT3 *m) {
    const GPT3Config *cfg = &m->config;
    if (a->layer != UNSET && (!check_range("attention", "layer", a->layer, 0, cfg->num_layers - 1) ||
                              !check_range("attention", "head", a->head, 0, cfg->num_heads - 1)))
        return 1;
    if (a->repeat != UNSET && 2.0 * a->repeat > context_room(m)) {
        fprintf(stderr, "demo attention: --repeat %d makes %.0f tokens, but the model's context has room for %d%s: "
                "--repeat %d at most\n", a->repeat, 2.0 * a->repeat, context_room(m),
                m->prompt ? " after its soft prompt" : "", context_room(m) / 2);
        return 1;
    }
    return 0;
}

/* Cells the picture would draw: too many make a file no viewer opens. */
static int attention_fits(const AttentionMaps *a, int one) {
    double cells = 0, most = 4194304;
    for (int l = 0; l < a->cfg->num_layers; l++) {
        double w = gpt3__layer_window(a->cfg, l, a->T); /* rows of 1, 2, ..., w cells, then w each */
        cells += a->cfg->num_heads * (a->T * w - w * (w - 1) / 2);
    }
    if (one) cells = a->T * (a->T + 1.0) / 2; /* a dense map, at most */
    if (cells <= most) return 1;
    fprintf(stderr, "demo attention: %s would draw %.0f cells, more than a picture should hold (%.0f): %s\n",
            one ? "the map" : "the grid of every layer and head", cells, most,
            one ? "give a shorter text" : "draw one head with --layer and --head, or give a shorter text");
    return 0;
}

/* The tokens to look at: the text's, cut to the model's context (said),
   or --repeat's N random tokens twice. *ids is allocated. */
static int attention_tokens(const AttentionArgs *a, GPT3Tokenizer *tok, const GPT3 *m, int **ids, int *T) {
    const GPT3Config *cfg = &m->config;
    size_t n = 0, room = (size_t)context_room(m);
    if (a->repeat != UNSET) {
        int V = cfg->vocab_size < tok->vocab_size ? cfg->vocab_size : tok->vocab_size;
        *ids = (int *)malloc(2 * (size_t)a->repeat * sizeof(int));
        if (!*ids) return fail("attention", GPT3_ERR_NOMEM);
        random_tokens(*ids, (size_t)a->repeat, V, (uint64_t)a->seed);
        memcpy(*ids + a->repeat, *ids, (size_t)a->repeat * sizeof(int));
        *T = 2 * a->repeat;
        return 0;
    }
    int rc = gpt3_encode(tok, a->text, strlen(a->text), ids, &n);
    if (rc != GPT3_OK) return fail("attention", rc);
    if (n > room) {
        fprintf(stderr, "[the text has %zu tokens; the model's context has room for %zu%s: it sees the first %zu]\n", n,
                room, m->prompt ? " after its soft prompt" : "", room);
        n = room;
    }
    for (size_t i = 0; i < n; i++)
        if ((*ids)[i] >= cfg->vocab_size) {
            fprintf(stderr, "demo attention: the text's token %zu (id %d) is not in the model's vocabulary of %d "
                    "(the tokenizer has %d): give the model's --encoder and --bpe\n", i, (*ids)[i], cfg->vocab_size,
                    tok->vocab_size);
            free(*ids);
            *ids = NULL;
            return 1;
        }
    *T = (int)n;
    return 0;
}

/* The forward, the scores, the table, the picture and the dump. */
static int draw_attention(const AttentionArgs *args, GPT3 *m, GPT3Tokenizer *tok, const int *ids, int T) {
    int N = m->prompt ? m->prompt->length : 0, one = args->layer != UNSET, L = m->config.num_layers;
    int NH = m->config.num_heads, *read = (int *)malloc((size_t)(N + T) * sizeof(int));
    double *scores = (double *)malloc((size_t)L * NH * sizeof(double));
    if (!read || !scores) {
        free(read);
        free(scores);
        return fail("attention", GPT3_ERR_NOMEM);
    }
    for (int i = 0; i < N; i++) read[i] = -1 - i; /* the soft prompt's vectors, then the tokens */
    memcpy(read + N, ids, (size_t)T * sizeof(int));
    AttentionMaps a = {&m->config, NULL, read, N + T, N};
    int rc = gpt3_forward(m, ids, NULL, 1, T);
    a.att = m->acts.att;
    rc = rc != GPT3_OK ? fail("attention", rc) : !attention_fits(&a, one);
    for (int l = 0; !rc && l < L; l++)
        for (int h = 0; h < NH; h++) scores[l * NH + h] = induction_score(&a, l, h);
    if (!rc) rc = print_induction_table(&a, scores);
    if (!rc) rc = write_attention_svg(args->out, args->model, &a, tok, scores, one ? args->layer : -1, args->head);
    if (!rc && args->dump) rc = write_attention_dump(args->dump, &a, one ? args->layer : -1, args->head);
    if (!rc) fprintf(stderr, "[%s: %s on %d tokens%s -> %s%s%s]\n", args->model, one ? "one head" : "every layer and head",
                     T, N ? " after its soft prompt" : "", args->out, args->dump ? ", " : "", args->dump ? args->dump : "");
    free(read);
    free(scores);
    return rc;
}

static int cmd_attention(int argc, char **argv) {
    AttentionArgs a = {"demo_out/model.ckpt", NULL, "attention.svg", NULL, NULL, NULL, UNSET, UNSET, UNSET, 42};
    Option opts[] = {
        {"model", OPT_STRING, &a.model, "checkpoint"},
        {"text", OPT_STRING, &a.text, "the text the model reads (its first max_seq_len tokens)"},
        {"repeat", OPT_INT, &a.repeat, "instead of --text: N random tokens, twice (the induction-head probe)"},
        {"seed", OPT_INT, &a.seed, "seed of --repeat's tokens"},
        {"out", OPT_STRING, &a.out, "the picture (SVG)"},
        {"layer", OPT_INT, &a.layer, "with --head: one large map, of this layer's head (from 0)"},
        {"head", OPT_INT, &a.head, "with --layer: the head (from 0)"},
        {"dump", OPT_STRING, &a.dump, "also write what is drawn as \"layer head query key prob\" lines"},
        {"encoder", OPT_STRING, &a.encoder, "encoder.json (default: the one beside the checkpoint, else bytes)"},
        {"bpe", OPT_STRING, &a.bpe, "vocab.bpe"},
    };
    int rc = parse_flags("attention", "Draws the attention of every layer and head on a text as one SVG (rows: layers,\n"
                         "columns: heads), and prints each head's induction score, best first.",
                         argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (check_attention_args(&a)) return 1;
    GPT3 m;
    GPT3Tokenizer tok;
    int *ids = NULL, T = 0;
    if (load_model_and_head(&m, a.model)) return 1; /* a soft prompt's vectors are drawn as [p1] .. [pN] */
    if (check_attention_model(&a, &m) || open_tokenizer(&tok, a.encoder, a.bpe, a.model)) {
        gpt3_free(&m);
        return 1;
    }
    if (tok.vocab_size != m.config.vocab_size)
        fprintf(stderr, "[note: the tokenizer has %d tokens and %s %d: is it the model's? (--encoder, --bpe)]\n",
                tok.vocab_size, a.model, m.config.vocab_size);
    rc = attention_tokens(&a, &tok, &m, &ids, &T) || draw_attention(&a, &m, &tok, ids, T);
    free(ids);
    gpt3_tokenizer_free(&tok);
    gpt3_free(&m);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* convert: Hugging Face GPT-2 weights -> a gpt3.h checkpoint               */
/*                                                                          */
/* ./demo convert DIR OUT.ckpt reads DIR/config.json and the weights in     */
/* DIR/model.safetensors, or in the shards that                             */
/* DIR/model.safetensors.index.json names, each tensor stored as F32, F16   */
/* or BF16. It writes the checkpoint that dev/convert_hf_gpt2.py writes,    */
/* bit for bit, and refuses what that script refuses, with its messages:    */
/* the script is the reference, this is the same conversion without         */
/* Python. (Stricter, it also refuses a tensor named twice in one header,   */
/* a negative or non-integer size, a shard outside DIR, and an index or a   */
/* config.json the script would crash on.) It:                              */
/*   - drops the "transformer." prefix GPT2LMHeadModel puts on names;       */
/*   - transposes the four Conv1D weights of each block (attn.c_attn,       */
/*     attn.c_proj, mlp.c_fc, mlp.c_proj): Hugging Face stores them         */
/*     (in, out) and computes x W + b, we store (out, in) and compute       */
/*     x W^T + b. c_attn's columns are q, k, v, the order of our qkvw rows; */
/*   - leaves out lm_head.weight, which GPT-2 ties to wte as gpt3.h does    */
/*     (a warning if it is not a copy of wte), and the attention-mask       */
/*     buffers some files carry (h.N.attn.bias, h.N.attn.masked_bias);      */
/*   - widens F16 and BF16 to float32 exactly: every value of either is a   */
/*     float32 (NaN payloads are kept).                                     */
/* A .safetensors file ("st" below) is 8 bytes N (unsigned, little-endian), */
/* N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, */
/* ..., "__metadata__": {...}}, then the data, which the offsets count      */
/* from. Tensors are streamed from the files a chunk at a time into the     */
/* model's parameters: the memory used is the checkpoint's size. gpt3_save  */
/* writes it atomically (a failed run leaves OUT as it was).                */

#define ST_MAX_HEADER (100u << 20) /* bytes: the safetensors library's own limit */
#define ST_MAX_RANK 8
#define ST_CHUNK 4096              /* values read from a file at a time */

typedef struct {
    char *name;        /* as the file has it: "transformer.h.0.ln_1.weight" */
    const char *key;   /* the name without "transformer.": "h.0.ln_1.weight" */
    char *dtype;       /* "F32", "F16", "BF16", or one refused when it is read */
    int rank;
    uint64_t shape[ST_MAX_RANK];
    uint64_t begin, end; /* its bytes, counted from the start of its file's data */
    int file;          /* which of the store's files holds it */
    size_t order;      /* its place in the files, header by header */
    int used;          /* read by the conversion (not "ignored") */
} StTensor;

typedef struct {
    const char *source;  /* what to name for a missing tensor: the file, or the index */
    char **paths;        /* model.safetensors, or the shards sorted */
    uint64_t *data_start; /* 8 + N: where each file's data begins */
    int n_files;
    StTensor *tensors;   /* every file's tensors, sorted by key */
    size_t count;
} StStore;

static void st_free(StStore *s) {
    for (size_t i = 0; i < s->count; i++) {
        free(s->tensors[i].name);
        free(s->tensors[i].dtype);
    }
    for (int i = 0; i < s->n_files; i++) free(s->paths[i]);
    free(s->tensors);
    free(s->paths);
    free(s->data_start);
    memset(s, 0, sizeof(*s));
}

/* The dtypes read: each value's size in bytes. */
static const struct { const char *name; int bytes; } st_dtypes[] = {{"F32", 4}, {"F16", 2}, {"BF16", 2}};
#define ST_SUPPORTED "F32, F16, BF16"

static int st_dtype_bytes(const char *dtype) {
    for (int i = 0; i < COUNT(st_dtypes); i++)
        if (strcmp(dtype, st_dtypes[i].name) == 0) return st_dtypes[i].bytes;
    return 0;
}

/* float16 bits -> the bits of the float32 of the same value. The sign
   stays on top; the 5-bit exponent (bias 15) becomes 8 bits (bias 127)
   and the 10-bit mantissa the top of the 23. A float16 subnormal
   (exponent 0: m 2^-24) is a float32 normal: m is shifted up to its
   leading 1, one exponent step down a shift. Infinities and NaNs
   (exponent 31) keep their payload. */
static uint32_t f16_to_f32_bits(uint32_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exponent = h >> 10 & 31, mantissa = h & 0x3ffu;
    if (exponent == 31) return sign | 0x7f800000u | mantissa << 13;
    if (exponent != 0) return sign | (exponent + 127 - 15) << 23 | mantissa << 13;
    if (mantissa == 0) return sign;  /* +-0 */
    exponent = 127 - 14;             /* 2^-14, float16's smallest normal */
    while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        exponent--;
    }
    return sign | exponent << 23 | (mantissa & 0x3ffu) << 13;
}

/* n values of dtype (width bytes each, little-endian) at raw as float32. */
static void st_widen(const unsigned char *raw, size_t n, int width, int bf16, float *out) {
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = raw + i * (size_t)width;
        uint32_t bits = width == 4 ? (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24
                        : bf16 ? ((uint32_t)b[0] | (uint32_t)b[1] << 8) << 16 /* bfloat16: a float32's top half */
                               : f16_to_f32_bits((uint32_t)b[0] | (uint32_t)b[1] << 8);
        memcpy(&out[i], &bits, sizeof(bits));
    }
}

/* ---- files and folders */

/* "dir/name", allocated (NULL out of memory: said). */
static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *path = (char *)malloc(a + b + 2);
    if (!path) {
        fprintf(stderr, "demo convert: out of memory\n");
        return NULL;
    }
    memcpy(path, dir, a);
    path[a] = '/';
    memcpy(path + a + 1, name, b + 1);
    return path;
}

/* 1 if the folder that would hold the file path exists (said if not;
   where we cannot tell, gpt3_save will). */
static int folder_of_exists(const char *path) {
#ifdef HAVE_POSIX
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path); /* "/x": the root */
    char *dir = (char *)malloc(len + 2);
    struct stat st;
    if (!dir) return 1;
    memcpy(dir, len ? path : ".", len ? len : 1);
    dir[len ? len : 1] = 0;
    int ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!ok) fprintf(stderr, "demo convert: %s: the folder %s does not exist\n", path, dir);
    free(dir);
    return ok;
#else
    (void)path;
    return 1;
#endif
}

/* ---- strict JSON values, for the three JSON files a model comes with */

/* 1 if text (n bytes) is one JSON value in valid UTF-8 (what Python's json
   module would load; its NaN and Infinity extensions aside). */
static int json_document(const char *text, size_t n) {
    for (size_t i = 0; i < n;) {
        int len = utf8_length((const unsigned char *)text + i, n - i);
        if (!len) return 0;
        i += (size_t)len;
    }
    const char *after = json_skip(text, text + n, 0);
    return after && json_space(after, text + n) == text + n;
}

/* The string at *p (at its opening quote) as a new copy, *p past it; 0 if
   it is not a string, or holds a NUL (\u0000), which a C string cannot. */
static int json_string_at(const char **p, const char *end, char **out) {
    const char *s = json_space(*p, end);
    if (s >= end || *s != '"') return 0;
    s++;
    json_nul_seen = 0;
    if (!json_text(&s, end, out)) return 0;
    if (json_nul_seen) {
        free(*out);
        *out = NULL;
        return 0;
    }
    *p = s;
    return 1;
}

/* The integer at *p (no fraction, no exponent; within long long) in *v, *p
   past it; 0 if the value there is not one. */
static int json_integer(const char **p, const char *end, long long *v) {
    const char *s = json_space(*p, end);
    int negative = s < end && *s == '-';
    long long x = 0;
    s += negative;
    if (s >= end || !isdigit((unsigned char)*s) || (*s == '0' && s + 1 < end && isdigit((unsigned char)s[1]))) return 0;
    for (; s < end && isdigit((unsigned char)*s); s++) {
        int digit = *s - '0';
        if (x > (LLONG_MAX - digit) / 10) return 0;
        x = 10 * x + digit;
    }
    if (s < end && (*s == '.' || *s == 'e' || *s == 'E')) return 0;
    *v = negative ? -x : x;
    *p = s;
    return 1;
}

/* The array of at most max integers at *p into v, *p past it: their count,
   or -1 if it is not one. */
static int json_integers(const char **p, const char *end, long long *v, int max) {
    const char *s = json_space(*p, end);
    int n = 0;
    if (s >= end || *s++ != '[') return -1;
    s = json_space(s, end);
    if (s < end && *s == ']') {
        *p = s + 1;
        return 0;
    }
    for (;;) {
        if (n == max || !json_integer(&s, end, &v[n++])) return -1;
        s = json_space(s, end);
        if (s < end && *s == ']') {
            *p = s + 1;
            return n;
        }
        if (s >= end || *s++ != ',') return -1;
    }
}

/* The members of an object, one at a time: first call with *p at its '{'
   and first 1, then with *p past the member's value and first 0. Gives
   the member's name (a new copy, to free) and *p at its value: 1; at the
   closing '}' (*p past it): 0; -1 if malformed. */
static int json_member_next(const char **p, const char *end, int first, char **name) {
    const char *s = json_space(*p, end);
    *name = NULL;
    if (first) {
        if (s >= end || *s++ != '{') return -1;
        s = json_space(s, end);
    }
    if (s < end && *s == '}') {
        *p = s + 1;
        return 0;
    }
    if (!first && (s >= end || *s++ != ',')) return -1;
    if (!json_string_at(&s, end, name)) return -1;
    s = json_space(s, end);
    if (s >= end || *s++ != ':') {
        free(*name);
        *name = NULL;
        return -1;
    }
    *p = json_space(s, end);
    return 1;
}

/* The JSON text of the value at v, for a message: at most 40 bytes. */
static void json_shown(const char *v, const char *end, char *out, size_t size) {
    const char *after = json_skip(v, end, 0);
    size_t n = after ? (size_t)(after - v) : 0;
    snprintf(out, size, "%.*s%s", (int)(n < 40 ? n : 40), v, n > 40 ? "..." : "");
}

/* ---- reading safetensors files */

/* What a file's first bytes say it is, when they are no header length. */
static const char *st_guess(const unsigned char *start, size_t n) {
    if (n >= 2 && memcmp(start, "PK", 2) == 0)
        return " (it is a zip archive: probably a PyTorch pytorch_model.bin; download model.safetensors instead)";
    if (n >= 8 && memcmp(start, "version ", 8) == 0)
        return " (it is a Git LFS pointer, not the data: run `git lfs pull` or download the file with curl/wget)";
    if (n >= 1 && (start[0] == '{' || start[0] == '<'))
        return " (it looks like JSON or HTML: was the download an error page?)";
    return " (the first 8 bytes are not a plausible header length)";
}

/* The JSON header of the safetensors file at path (a new copy, *n bytes)
   and the file's size; NULL (said) if it is not one. */
static char *st_read_header(const char *path, size_t *n, uint64_t *size) {
    unsigned char start[8];
    uint64_t length = 0;
    char *text = NULL;
    FILE *f = NULL;
    *n = 0;
    if (!regular_file(path, size)) {
        fprintf(stderr, "demo convert: %s: no such file\n", path);
        return NULL;
    }
    if (!(f = fopen(path, "rb"))) {
        fprintf(stderr, "demo convert: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t got = fread(start, 1, 8, f);
    for (int i = 7; i >= 0 && got == 8; i--) length = length << 8 | start[i];
    int truncated = 0;
    if (got < 8 || length < 2 || length > ST_MAX_HEADER) {
        fprintf(stderr, "demo convert: %s: not a safetensors file%s\n", path, st_guess(start, got));
    } else if (length > *size - 8) { /* refused before it is allocated (8 bytes were read: *size >= 8) */
        truncated = 1;
    } else if (!(text = (char *)malloc((size_t)length + 1))) {
        fprintf(stderr, "demo convert: out of memory for the header of %s\n", path);
    } else if (fread(text, 1, (size_t)length, f) != length) {
        truncated = 1;
        free(text);
        text = NULL;
    }
    if (truncated)
        fprintf(stderr, "demo convert: %s: not a safetensors file, or truncated: its header should be %llu bytes "
                "but the file has only %llu\n", path, (unsigned long long)length, (unsigned long long)*size);
    fclose(f);
    if (text) text[length] = 0;
    *n = (size_t)length;
    return text;
}

/* One header entry, {"dtype": "F32", "shape": [..], "data_offsets":
   [begin, end]} (other members skipped), at *p into t; 0 if it is not
   one (a member twice, a negative size, more than ST_MAX_RANK axes). */
static int st_entry(const char **p, const char *end, StTensor *t, long long offsets[2]) {
    long long shape[ST_MAX_RANK];
    int n_offsets = -1, r;
    char *member;
    t->rank = -1;
    for (int first = 1; (r = json_member_next(p, end, first, &member)) > 0; first = 0) {
        int ok;
        if (strcmp(member, "dtype") == 0) ok = !t->dtype && json_string_at(p, end, &t->dtype);
        else if (strcmp(member, "shape") == 0) ok = t->rank < 0 && (t->rank = json_integers(p, end, shape, ST_MAX_RANK)) >= 0;
        else if (strcmp(member, "data_offsets") == 0) ok = n_offsets < 0 && (n_offsets = json_integers(p, end, offsets, 2)) == 2;
        else ok = (*p = json_skip(*p, end, 0)) != NULL;
        free(member);
        if (!ok) return 0;
    }
    for (int i = 0; i < t->rank; i++) {
        if (shape[i] < 0) return 0;
        t->shape[i] = (uint64_t)shape[i];
    }
    return r == 0 && t->dtype && t->rank >= 0 && n_offsets == 2;
}

/* A new tensor at the end of s->tensors; NULL (said) out of memory. */
static StTensor *st_add(StStore *s) {
    if ((s->count & (s->count + 1)) == 0) { /* at 0, 1, 3, 7, ...: double */
        StTensor *grown = (StTensor *)realloc(s->tensors, (2 * s->count + 1) * sizeof(StTensor));
        if (!grown) {
            fprintf(stderr, "demo convert: out of memory\n");
            return NULL;
        }
        s->tensors = grown;
    }
    StTensor *t = &s->tensors[s->count];
    memset(t, 0, sizeof(*t));
    t->order = s->count++;
    return t;
}

/* The header text (n bytes) of file number `file`, size bytes in all: its
   tensors added to s. 0 (said) if it is malformed. */
static int st_parse_header(StStore *s, int file, const char *text, size_t n, uint64_t size) {
    const char *path = s->paths[file], *end = text + n, *p = text;
    uint64_t data_size = size - s->data_start[file];
    char *name;
    int r;
    if (!json_document(text, n)) {
        fprintf(stderr, "demo convert: %s: not a safetensors file (its header is not JSON)\n", path);
        return 0;
    }
    if (*json_space(text, end) != '{') {
        fprintf(stderr, "demo convert: %s: not a safetensors file (its header is not a JSON object)\n", path);
        return 0;
    }
    for (int first = 1; (r = json_member_next(&p, end, first, &name)) != 0; first = 0) {
        if (r < 0) { /* the JSON is valid: a name json_string_at refused */
            fprintf(stderr, "demo convert: %s: %s\n", path, json_out_of_memory ? "out of memory"
                    : "not a safetensors file (a tensor name holds a NUL character)");
            return 0;
        }
        if (strcmp(name, "__metadata__") == 0) { /* free-form: not ours */
            p = json_skip(p, end, 0);
            free(name);
            continue;
        }
        StTensor *t = st_add(s);
        long long offsets[2];
        if (!t) {
            free(name);
            return 0;
        }
        t->name = name;
        t->key = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
        t->file = file;
        if (!st_entry(&p, end, t, offsets)) {
            if (json_out_of_memory) fprintf(stderr, "demo convert: %s: out of memory\n", path);
            else fprintf(stderr, "demo convert: %s: not a safetensors file (bad header entry for '%s')\n", path, name);
            return 0;
        }
        if (offsets[0] < 0 || offsets[0] > offsets[1]) {
            fprintf(stderr, "demo convert: %s: corrupt header: tensor %s has data offsets [%lld, %lld]\n", path, name,
                    offsets[0], offsets[1]);
            return 0;
        }
        t->begin = (uint64_t)offsets[0];
        t->end = (uint64_t)offsets[1];
        if (t->end > data_size) {
            fprintf(stderr, "demo convert: %s: truncated: tensor %s needs bytes up to %llu but the file has %llu\n",
                    path, name, (unsigned long long)(s->data_start[file] + t->end), (unsigned long long)size);
            return 0;
        }
    }
    return 1;
}

/* File `path` added to the store, its tensors with it; 0 (said) if it is not safetensors. */
static int st_add_file(StStore *s, char *path) {
    char **paths = (char **)realloc(s->paths, (size_t)(s->n_files + 1) * sizeof(char *));
    uint64_t *starts = paths ? (uint64_t *)realloc(s->data_start, (size_t)(s->n_files + 1) * sizeof(uint64_t)) : NULL;
    size_t n;
    uint64_t size;
    if (paths) s->paths = paths;
    if (starts) s->data_start = starts;
    if (!paths || !starts) {
        fprintf(stderr, "demo convert: out of memory\n");
        free(path);
        return 0;
    }
    int file = s->n_files++;
    s->paths[file] = path;
    char *text = st_read_header(path, &n, &size);
    s->data_start[file] = 8 + (uint64_t)n;
    int ok = text && st_parse_header(s, file, text, n, size);
    free(text);
    return ok;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A shard's name from a weight_map: a file in the model's folder. */
static int plain_file_name(const char *name) {
    return name[0] && !strpbrk(name, "/\\") && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The shards' names in the weight_map of an index (text, n bytes): new
   copies in *names, *count of them; 0 (said) if it is malformed. */
static int st_shard_names(const char *index, const char *text, size_t n, char ***names, size_t *count) {
    const char *end = text + n, *map = NULL;
    char *name, *shard;
    int bad = 1, r;
    if (json_document(text, n)) map = json_member(text, n, "weight_map", &bad);
    if (bad || !map || *map != '{') {
        fprintf(stderr, "demo convert: %s: %s\n", index, bad ? "not valid JSON, or not a JSON object"
                                                            : "no \"weight_map\" object (which shard holds each tensor)");
        return 0;
    }
    for (int first = 1; (r = json_member_next(&map, end, first, &name)) != 0; first = 0) {
        char **grown = r > 0 ? (char **)realloc(*names, (*count + 1) * sizeof(char *)) : NULL;
        int good = grown && json_string_at(&map, end, &shard);
        if (grown) *names = grown;
        if (good && plain_file_name(shard)) {
            (*names)[(*count)++] = shard;
        } else {
            if (json_out_of_memory || (r > 0 && !grown)) fprintf(stderr, "demo convert: %s: out of memory\n", index);
            else if (name) fprintf(stderr, "demo convert: %s: the weight_map's entry for '%s' is not the name of a file beside "
                                   "it\n", index, name);
            else fprintf(stderr, "demo convert: %s: the weight_map has a name with a NUL character\n", index);
            if (good) free(shard);
            free(name);
            return 0;
        }
        free(name);
    }
    return 1;
}

/* The shards an index (model.safetensors.index.json) names, each once, in
   sorted order, added to s; 0 (said) if the index is malformed or a shard
   is missing or not safetensors. */
static int st_add_shards(StStore *s, const char *dir, const char *index) {
    size_t n, count = 0;
    char *text = (char *)read_file(index, &n), **names = NULL;
    int ok = text && st_shard_names(index, text, n, &names, &count);
    if (ok && count > 1) qsort(names, count, sizeof(char *), compare_strings); /* (qsort wants an array, even of 0) */
    for (size_t i = 0; ok && i < count; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) continue;
        char *path = path_join(dir, names[i]);
        ok = path && st_add_file(s, path);
    }
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    free(text);
    return ok;
}

/* Tensors sorted by key, a key's copies in the order of the files. */
static int st_by_key(const void *a, const void *b) {
    const StTensor *x = (const StTensor *)a, *y = (const StTensor *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : x->order < y->order ? -1 : x->order > y->order;
}

/* Every tensor of DIR's model.safetensors, or of the shards its index
   names, sorted by key; 0 (said) if a file is missing or malformed, or a
   tensor is stored twice. */
static int st_open(StStore *s, const char *dir, const char *single, const char *index) {
    uint64_t size;
    int ok;
    memset(s, 0, sizeof(*s));
    if (regular_file(single, &size)) {
        char *path = path_join(dir, "model.safetensors");
        s->source = single;
        ok = path && st_add_file(s, path);
    } else if (regular_file(index, &size)) {
        s->source = index;
        ok = st_add_shards(s, dir, index);
    } else {
        char *bin = path_join(dir, "pytorch_model.bin");
        fprintf(stderr, "demo convert: %s: no such file%s\n", single,
                bin && regular_file(bin, &size) ? " (there is a pytorch_model.bin: download model.safetensors from the same "
                                                  "hub page instead)" : "");
        free(bin);
        return 0;
    }
    if (!ok) return 0;
    if (s->count > 1) qsort(s->tensors, s->count, sizeof(StTensor), st_by_key); /* (none: no array) */
    const StTensor *twice = NULL; /* as Python meets it: the second copy seen first */
    for (size_t i = 1; i < s->count; i++)
        if (strcmp(s->tensors[i].key, s->tensors[i - 1].key) == 0 && (!twice || s->tensors[i].order < twice->order))
            twice = &s->tensors[i];
    if (twice) fprintf(stderr, "demo convert: %s: tensor %s is stored twice\n", s->paths[twice->file], twice->key);
    return !twice;
}

/* The tensor whose key is key, NULL if there is none. */
static StTensor *st_find(const StStore *s, const char *key) {
    size_t lo = 0, hi = s->count;
    while (lo < hi) { /* binary search: keys are sorted, and each is there once */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->tensors[mid].key, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < s->count && strcmp(s->tensors[lo].key, key) == 0 ? &s->tensors[lo] : NULL;
}

/* A shape as Python prints a list: "[67, 16]". */
static void shape_text(const uint64_t *shape, int rank, char *out, size_t size) {
    size_t at = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < rank && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    if (at < size) snprintf(out + at, size - at, "]");
}

/* ---- streaming a tensor's values */

typedef struct {
    FILE *f;
    const StTensor *t;
    const char *path;
    int width, bf16;
    uint64_t left;       /* values not yet read */
    int failed;
    float values[ST_CHUNK];
} StReader;

/* Ready to read tensor t; 0 (said) if its size does not match its shape
   and dtype, or the file cannot be read. */
static int st_reader_open(StReader *r, const StStore *s, const StTensor *t) {
    uint64_t count = 1, bytes = 0;
    int overflow = 0;
    char shown[256];
    r->t = t;
    r->path = s->paths[t->file];
    r->width = st_dtype_bytes(t->dtype);
    r->bf16 = strcmp(t->dtype, "BF16") == 0;
    r->failed = 0;
    r->f = NULL;
    for (int i = 0; i < t->rank; i++) {
        overflow |= t->shape[i] != 0 && count > UINT64_MAX / t->shape[i];
        count *= t->shape[i];
    }
    overflow |= count > UINT64_MAX / 4;
    bytes = count * (uint64_t)r->width;
    r->left = count;
    if (overflow || bytes != t->end - t->begin) {
        char should[32] = "more than 2^64";
        if (!overflow) snprintf(should, sizeof(should), "%llu", (unsigned long long)bytes);
        shape_text(t->shape, t->rank, shown, sizeof(shown));
        fprintf(stderr, "demo convert: %s: corrupt header: tensor %s of shape %s and dtype %s should take %s bytes, "
                "not %llu\n", r->path, t->name, shown, t->dtype, should, (unsigned long long)(t->end - t->begin));
        return 0;
    }
    uint64_t at = s->data_start[t->file] + t->begin;
    if (!(r->f = fopen(r->path, "rb")) || at > (uint64_t)LONG_MAX || fseek(r->f, (long)at, SEEK_SET) != 0) {
        fprintf(stderr, "demo convert: cannot read %s at byte %llu: %s\n", r->path, (unsigned long long)at,
                r->f ? "the file is too large for this system's fseek" : strerror(errno));
        if (r->f) fclose(r->f);
        r->f = NULL;
        return 0;
    }
    return 1;
}

/* The next values (at most ST_CHUNK) in r->values: their count; 0 at the
   end, or on a read error (said, r->failed set). */
static size_t st_reader_next(StReader *r) {
    unsigned char raw[ST_CHUNK * 4];
    size_t n = r->left < ST_CHUNK ? (size_t)r->left : ST_CHUNK;
    if (n == 0 || r->failed) return 0;
    if (fread(raw, (size_t)r->width, n, r->f) != n) {
        fprintf(stderr, "demo convert: cannot read tensor %s from %s: %s\n", r->t->name, r->path,
                ferror(r->f) ? strerror(errno) : "the file ended early (did it change while being read?)");
        r->failed = 1;
        return 0;
    }
    st_widen(raw, n, r->width, r->bf16, r->values);
    r->left -= n;
    return n;
}

/* 1 if every value was read. */
static int st_reader_close(StReader *r) {
    if (r->f) fclose(r->f);
    r->f = NULL;
    return !r->failed;
}

/* Tensor t into dst: as stored, or, for a Conv1D weight (rows, cols),
   transposed to (cols, rows). 0 (said) if it cannot be read. */
static int st_read_into(const StStore *s, const StTensor *t, float *dst, int transpose) {
    StReader r;
    size_t n;
    uint64_t k = 0, rows = t->shape[0], cols = t->rank > 1 ? t->shape[1] : 1;
    if (!st_reader_open(&r, s, t)) return 0;
    while ((n = st_reader_next(&r)) > 0)
        for (size_t i = 0; i < n; i++, k++) dst[transpose ? (k % cols) * rows + k / cols : k] = r.values[i];
    return st_reader_close(&r);
}

/* ---- config.json */

typedef struct {
    GPT3Config cfg;
    char activation[48];
    double epsilon;    /* layer_norm_epsilon */
} HfConfig;

/* Member key of config.json (text, n bytes) if it is there and not null. */
static const char *hf_value(const char *text, size_t n, const char *key) {
    int bad;
    const char *v = json_member(text, n, key, &bad);
    return v && strncmp(v, "null", 4) != 0 ? v : NULL;
}

/* Python's truth of a JSON value, as the script tests a flag: false, null,
   0, "", [] and {} are false. */
static int json_truthy(const char *v, const char *end) {
    if (*v == '"') return v + 1 < end && v[1] != '"';
    if (*v == '[' || *v == '{') {
        const char *s = json_space(v + 1, end);
        return s < end && *s != ']' && *s != '}';
    }
    if (*v == 't' || *v == 'f' || *v == 'n') return *v == 't';
    return strtod(v, NULL) != 0.0;
}

/* The first of key1, key2 (NULL: only key1) that config.json (text, n
   bytes) has, as a positive int in *out; 0 (said) if missing or not one. */
static int hf_positive(const char *path, const char *text, size_t n, const char *key1, const char *key2, int *out) {
    const char *key = key1, *v = hf_value(text, n, key1), *p;
    long long x = 0;
    char shown[64];
    if (!v && key2) v = hf_value(text, n, key = key2);
    if (!v) {
        fprintf(stderr, "demo convert: %s: missing %s%s%s\n", path, key1, key2 ? " or " : "", key2 ? key2 : "");
        return 0;
    }
    p = v;
    int integer = json_integer(&p, text + n, &x);
    const char *digits_end = v + strspn(v, "0123456789");
    int huge = (integer && x > INT_MAX) ||
               (!integer && digits_end > v && *digits_end != '.' && *digits_end != 'e' && *digits_end != 'E');
    if (integer && x >= 1 && !huge) {
        *out = (int)x;
        return 1;
    }
    json_shown(v, text + n, shown, sizeof(shown));
    if (huge) fprintf(stderr, "demo convert: %s: %s %s is too large for gpt3.h\n", path, key, shown);
    else fprintf(stderr, "demo convert: %s: %s must be a positive integer, not %s\n", path, key, shown);
    return 0;
}

/* activation_function: the tanh GELU gpt3.h computes, under any of its
   names, or the exact (erf) GELU with a warning; 0 (said) otherwise. */
static int hf_activation(const char *path, const char *text, size_t n, HfConfig *hc) {
    static const char *const tanh_gelus[] = {"gelu_fast", "gelu_new", "gelu_pytorch_tanh"};
    int bad;
    const char *v = json_member(text, n, "activation_function", &bad), *p = v;
    char *act = NULL, shown[64] = "";
    int tanh_gelu = !v; /* absent: "gelu_new" */
    if (v && json_string_at(&p, text + n, &act)) {
        snprintf(hc->activation, sizeof(hc->activation), "%s", act);
        for (int i = 0; i < COUNT(tanh_gelus); i++) tanh_gelu |= strcmp(act, tanh_gelus[i]) == 0;
    } else {
        snprintf(hc->activation, sizeof(hc->activation), "gelu_new");
    }
    if (act && strcmp(act, "gelu") == 0) {
        fprintf(stderr, "demo convert: warning: activation_function is 'gelu' (exact, erf-based); gpt3.h computes the "
                "tanh approximation, which differs from it by less than 1e-3 per activation\n");
        tanh_gelu = 1;
    }
    if (json_out_of_memory) {
        fprintf(stderr, "demo convert: %s: out of memory\n", path);
        tanh_gelu = 0;
    } else if (!tanh_gelu) {
        if (act) snprintf(shown, sizeof(shown), "'%.40s%s'", act, strlen(act) > 40 ? "..." : "");
        else json_shown(v, text + n, shown, sizeof(shown));
        fprintf(stderr, "demo convert: %s: activation_function %s is not supported (gpt3.h computes the tanh GELU: "
                "gelu_fast, gelu_new, gelu_pytorch_tanh)\n", path, shown);
    }
    free(act);
    return tanh_gelu;
}

/* config.json (text, n bytes) as a gpt3.h config: the script's checks, in
   its order, with its messages; 0 (said) for a variation of GPT-2 that
   gpt3.h does not compute. */
static int hf_parse_config(const char *path, const char *text, size_t n, HfConfig *hc) {
    GPT3Config *c = &hc->cfg;
    const char *v, *end = text + n, *why = NULL;
    char shown[64];
    int bad;
    memset(hc, 0, sizeof(*hc));
    if (!hf_positive(path, text, n, "n_positions", "n_ctx", &c->max_seq_len) ||
        !hf_positive(path, text, n, "vocab_size", NULL, &c->vocab_size) ||
        !hf_positive(path, text, n, "n_layer", NULL, &c->num_layers) ||
        !hf_positive(path, text, n, "n_head", NULL, &c->num_heads) ||
        !hf_positive(path, text, n, "n_embd", NULL, &c->channels))
        return 0;
    long long C = c->channels;
    if (C % c->num_heads != 0) {
        fprintf(stderr, "demo convert: %s: n_embd %lld does not divide by n_head %d\n", path, C, c->num_heads);
        return 0;
    }
    if ((v = json_member(text, n, "model_type", &bad)) && strncmp(v, "\"gpt2\"", 6) != 0) {
        json_shown(v, end, shown, sizeof(shown));
        fprintf(stderr, "demo convert: warning: model_type is %s, not \"gpt2\": converting it as GPT-2 anyway\n", shown);
    }
    /* the GPT-2 variations gpt3.h does not implement */
    if ((v = hf_value(text, n, "n_inner")) && !((*v == '-' || isdigit((unsigned char)*v)) && strtod(v, NULL) == 4.0 * C)) {
        json_shown(v, end, shown, sizeof(shown));
        fprintf(stderr, "demo convert: %s: n_inner %s is not 4 * n_embd = %lld; gpt3.h's MLP is always 4C wide\n", path,
                shown, 4 * C);
        return 0;
    }
    if ((v = hf_value(text, n, "scale_attn_weights")) && strncmp(v, "false", 5) == 0)
        why = "scale_attn_weights is false; gpt3.h always scales attention by 1/sqrt(head size)";
    else if ((v = hf_value(text, n, "scale_attn_by_inverse_layer_idx")) && json_truthy(v, end))
        why = "scale_attn_by_inverse_layer_idx is not supported by gpt3.h";
    else if ((v = hf_value(text, n, "add_cross_attention")) && json_truthy(v, end))
        why = "add_cross_attention (an encoder-decoder model) is not supported by gpt3.h";
    if (why) {
        fprintf(stderr, "demo convert: %s: %s\n", path, why);
        return 0;
    }
    /* layer_norm_epsilon: a warning unless it is 1e-5 (to a relative 1e-6, as math.isclose) */
    hc->epsilon = 1e-5;
    if ((v = hf_value(text, n, "layer_norm_epsilon"))) {
        char *after;
        double eps = strtod(v, &after);
        if (after == v || *v == '"' || fabs(eps - 1e-5) > 1e-6 * fmax(fabs(eps), 1e-5)) {
            json_shown(v, end, shown, sizeof(shown));
            fprintf(stderr, "demo convert: warning: layer_norm_epsilon is %s, gpt3.h uses 1e-05: outputs will differ "
                    "slightly\n", shown);
        }
        if (after != v) hc->epsilon = eps;
    }
    if (!hf_activation(path, text, n, hc)) return 0;
    c->local_window = 0; /* GPT-2: every layer dense */
    const char *problem = gpt3_config_problem(c);
    if (problem) fprintf(stderr, "demo convert: %s: gpt3.h cannot build this model: %s\n", path, problem);
    return problem == NULL;
}

/* The gpt3.h config of the GPT-2 that the file config.json describes; 0 (said) if none. */
static int hf_read_config(const char *path, HfConfig *hc) {
    size_t n;
    uint64_t size;
    char *text;
    int ok = 0;
    if (!regular_file(path, &size)) {
        fprintf(stderr, "demo convert: %s: no such file\n", path);
        return 0;
    }
    if (!(text = (char *)read_file(path, &n))) return 0;
    if (!json_document(text, n)) fprintf(stderr, "demo convert: %s: not valid JSON\n", path);
    else if (*json_space(text, text + n) != '{') fprintf(stderr, "demo convert: %s: not a JSON object\n", path);
    else ok = hf_parse_config(path, text, n, hc);
    free(text);
    return ok;
}

/* ---- the conversion */

/* Our 16 tensors in checkpoint order as Hugging Face stores them: the name
   (after "h.N." for a per-layer one), its shape there (axes: V vocab, P
   positions, C channels, 3 = 3C, 4 = 4C; 0 = none), and whether it is a
   Conv1D weight, stored (in, out), to transpose to our (out, in). */
static const struct {
    const char *name;
    int per_layer;
    char rows, cols;
    int conv1d;
} hf_layout[GPT3_NUM_TENSORS] = {
    {"wte.weight", 0, 'V', 'C', 0},         /* wte      (V, C)     */
    {"wpe.weight", 0, 'P', 'C', 0},         /* wpe      (maxT, C)  */
    {"ln_1.weight", 1, 'C', 0, 0},          /* ln1w     (L, C)     */
    {"ln_1.bias", 1, 'C', 0, 0},            /* ln1b     (L, C)     */
    {"attn.c_attn.weight", 1, 'C', '3', 1}, /* qkvw     (L, 3C, C) */
    {"attn.c_attn.bias", 1, '3', 0, 0},     /* qkvb     (L, 3C)    */
    {"attn.c_proj.weight", 1, 'C', 'C', 1}, /* attprojw (L, C, C)  */
    {"attn.c_proj.bias", 1, 'C', 0, 0},     /* attprojb (L, C)     */
    {"ln_2.weight", 1, 'C', 0, 0},          /* ln2w     (L, C)     */
    {"ln_2.bias", 1, 'C', 0, 0},            /* ln2b     (L, C)     */
    {"mlp.c_fc.weight", 1, 'C', '4', 1},    /* fcw      (L, 4C, C) */
    {"mlp.c_fc.bias", 1, '4', 0, 0},        /* fcb      (L, 4C)    */
    {"mlp.c_proj.weight", 1, '4', 'C', 1},  /* fcprojw  (L, C, 4C) */
    {"mlp.c_proj.bias", 1, 'C', 0, 0},      /* fcprojb  (L, C)     */
    {"ln_f.weight", 0, 'C', 0, 0},          /* lnfw     (C)        */
    {"ln_f.bias", 0, 'C', 0, 0},            /* lnfb     (C)        */
};

static uint64_t hf_axis(char axis, const GPT3Config *c) {
    uint64_t C = (uint64_t)c->channels;
    return axis == 'V' ? (uint64_t)c->vocab_size : axis == 'P' ? (uint64_t)c->max_seq_len
           : axis == 'C' ? C : axis == '3' ? 3 * C : 4 * C;
}

/* Tensor i of the layout, layer l: its name in *name, its Hugging Face
   shape in shape (the rank returned). */
static int hf_tensor(int i, int l, const GPT3Config *c, char *name, size_t size, uint64_t shape[2]) {
    if (hf_layout[i].per_layer) snprintf(name, size, "h.%d.%s", l, hf_layout[i].name);
    else snprintf(name, size, "%s", hf_layout[i].name);
    shape[0] = hf_axis(hf_layout[i].rows, c);
    shape[1] = hf_layout[i].cols ? hf_axis(hf_layout[i].cols, c) : 0;
    return hf_layout[i].cols ? 2 : 1;
}

/* Every tensor the model needs is there with a dtype we read and the shape
   config.json gives: the script's checks, in its order, before anything is
   read. The dtypes seen go to dtypes, sorted: "BF16/F16/F32" at most. */
static int hf_check_tensors(StStore *s, const GPT3Config *c, char dtypes[32]) {
    char name[64], want[64], got[256];
    uint64_t shape[2];
    int seen[COUNT(st_dtypes)] = {0};
    for (int i = 0; i < GPT3_NUM_TENSORS; i++)
        for (int l = 0; l < (hf_layout[i].per_layer ? c->num_layers : 1); l++) {
            int rank = hf_tensor(i, l, c, name, sizeof(name), shape);
            StTensor *t = st_find(s, name);
            shape_text(shape, rank, want, sizeof(want));
            if (!t) {
                fprintf(stderr, "demo convert: %s: missing tensor %s (expected shape %s)\n", s->source, name, want);
                return 0;
            }
            if (!st_dtype_bytes(t->dtype)) {
                fprintf(stderr, "demo convert: %s: tensor %s has unsupported dtype %s (supported: " ST_SUPPORTED ")\n",
                        s->paths[t->file], name, t->dtype);
                return 0;
            }
            if (t->rank != rank || t->shape[0] != shape[0] || (rank == 2 && t->shape[1] != shape[1])) {
                shape_text(t->shape, t->rank, got, sizeof(got));
                fprintf(stderr, "demo convert: %s: tensor %s has shape %s, expected %s for this config.json\n",
                        s->paths[t->file], name, got, want);
                return 0;
            }
            t->used = 1;
            for (int d = 0; d < COUNT(st_dtypes); d++) seen[d] |= strcmp(t->dtype, st_dtypes[d].name) == 0;
        }
    size_t at = 0;
    dtypes[0] = 0;
    for (int d = COUNT(st_dtypes) - 1; d >= 0; d--) /* sorted: BF16, F16, F32 */
        if (seen[d]) at += (size_t)snprintf(dtypes + at, 32 - at, "%s%s", at ? "/" : "", st_dtypes[d].name);
    return 1;
}

/* A tensor the conversion leaves out without a word: lm_head (compared
   with wte) and the attention-mask buffers of older files. */
static int hf_known_extra(const char *key) {
    size_t n = strlen(key);
    return strcmp(key, "lm_head.weight") == 0 || (n >= 10 && strcmp(key + n - 10, ".attn.bias") == 0) ||
           (n >= 17 && strcmp(key + n - 17, ".attn.masked_bias") == 0);
}

/* The tensors not converted: how many. Those GPT-2 does not have get a
   warning that names the first five. */
static size_t hf_not_converted(const StStore *s) {
    size_t skipped = 0, unknown = 0, named = 0;
    for (size_t i = 0; i < s->count; i++) {
        skipped += !s->tensors[i].used;
        unknown += !s->tensors[i].used && !hf_known_extra(s->tensors[i].key);
    }
    if (unknown) fprintf(stderr, "demo convert: warning: ignoring %zu tensor(s) GPT-2 does not use: ", unknown);
    for (size_t i = 0; i < s->count && unknown; i++)
        if (!s->tensors[i].used && !hf_known_extra(s->tensors[i].key) && named++ < 5)
            fprintf(stderr, "%s%s", named > 1 ? ", " : "", s->tensors[i].key);
    if (unknown) fprintf(stderr, "%s\n", unknown > 5 ? ", ..." : "");
    return skipped;
}

/* lm_head.weight, where the files have it, should be a copy of wte (GPT-2
   ties them, and so does gpt3.h): a warning if it is not. 0 (said) if it
   cannot be read. */
static int hf_check_lm_head(const StStore *s, const float *wte, const GPT3Config *c) {
    const StTensor *t = st_find(s, "lm_head.weight");
    StReader r;
    size_t n;
    uint64_t k = 0;
    int differs = 0;
    char shown[256];
    if (!t) return 1;
    if (!st_dtype_bytes(t->dtype)) {
        fprintf(stderr, "demo convert: warning: lm_head.weight has dtype %s: not compared with wte\n", t->dtype);
        return 1;
    }
    if (t->rank != 2 || t->shape[0] != (uint64_t)c->vocab_size || t->shape[1] != (uint64_t)c->channels) {
        shape_text(t->shape, t->rank, shown, sizeof(shown));
        fprintf(stderr, "demo convert: warning: lm_head.weight has shape %s, not wte's [%d, %d]; gpt3.h ties the "
                "output head to wte and ignores it\n", shown, c->vocab_size, c->channels);
        return 1;
    }
    if (!st_reader_open(&r, s, t)) return 0;
    while ((n = st_reader_next(&r)) > 0)
        for (size_t i = 0; i < n; i++, k++) differs |= r.values[i] != wte[k]; /* NaN differs, -0 == 0: np.array_equal */
    if (!st_reader_close(&r)) return 0;
    if (differs)
        fprintf(stderr, "demo convert: warning: lm_head.weight differs from wte.weight (the head was not tied): gpt3.h "
                "ties the output head to wte, so the converted model's logits will differ\n");
    return 1;
}

/* Every tensor into m's parameters, in checkpoint order. */
static int hf_read_parameters(const StStore *s, GPT3 *m) {
    const GPT3Config *c = &m->config;
    float *views[GPT3_NUM_TENSORS] = {m->w.wte, m->w.wpe, m->w.ln1w, m->w.ln1b, m->w.qkvw, m->w.qkvb,
                                      m->w.attprojw, m->w.attprojb, m->w.ln2w, m->w.ln2b, m->w.fcw, m->w.fcb,
                                      m->w.fcprojw, m->w.fcprojb, m->w.lnfw, m->w.lnfb};
    char name[64];
    uint64_t shape[2];
    for (int i = 0; i < GPT3_NUM_TENSORS; i++)
        for (int l = 0; l < (hf_layout[i].per_layer ? c->num_layers : 1); l++) {
            int rank = hf_tensor(i, l, c, name, sizeof(name), shape);
            size_t per_layer = (size_t)shape[0] * (size_t)(rank == 2 ? shape[1] : 1);
            if (!st_read_into(s, st_find(s, name), views[i] + (size_t)l * per_layer, hf_layout[i].conv1d)) return 0;
            if (i == 0 && !hf_check_lm_head(s, m->w.wte, c)) return 0;
        }
    return 1;
}

/* n with thousands separators: 124439808 -> "124,439,808". */
static const char *with_commas(unsigned long long n, char out[32]) {
    char digits[32];
    int len = snprintf(digits, sizeof(digits), "%llu", n), at = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0) out[at++] = ',';
        out[at++] = digits[i];
    }
    out[at] = 0;
    return out;
}

static int hf_convert(const char *dir, const char *out) {
    HfConfig hc;
    StStore s;
    GPT3 m;
    char dtypes[32], a[32], b[32];
    int ok = 0, rc;
    if (!folder_of_exists(out)) return 0;
    char *config = path_join(dir, "config.json"), *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    memset(&s, 0, sizeof(s));
    memset(&m, 0, sizeof(m));
    if (!config || !single || !index) fail("convert", GPT3_ERR_NOMEM);
    if (config && single && index && hf_read_config(config, &hc) && st_open(&s, dir, single, index) &&
        hf_check_tensors(&s, &hc.cfg, dtypes)) {
        const GPT3Config *c = &hc.cfg;
        size_t skipped = hf_not_converted(&s);
        fprintf(stderr, "config: vocab_size %d, max_seq_len %d, layers %d, heads %d, channels %d, activation %s, "
                "layer_norm_epsilon %g\n", c->vocab_size, c->max_seq_len, c->num_layers, c->num_heads, c->channels,
                hc.activation, hc.epsilon);
        fprintf(stderr, "input: ");
        for (int i = 0; i < s.n_files; i++) fprintf(stderr, "%s%s", i ? ", " : "", s.paths[i]);
        fprintf(stderr, " (%s, %zu tensors, %zu not converted)\n", dtypes, s.count, skipped);
        if ((rc = gpt3_init(&m, c, 0)) != GPT3_OK) fail("convert", rc);
        else ok = hf_read_parameters(&s, &m);
    }
    if (ok) {
        size_t nonfinite = 0;
        for (size_t i = 0; i < m.num_parameters; i++) nonfinite += !isfinite(m.params[i]);
        if (nonfinite) fprintf(stderr, "demo convert: warning: %zu parameters are NaN or infinite\n", nonfinite);
        if ((rc = gpt3_save(&m, out)) != GPT3_OK) {
            fprintf(stderr, "demo convert: cannot write %s: %s\n", out, gpt3_strerror(rc));
            ok = 0;
        }
    }
    if (ok) {
        unsigned long long bytes = 4ull * (256 + m.num_parameters);
        fprintf(stderr, "parameters: %s\nwrote %s: %s bytes (%.2f MiB)\n", with_commas(m.num_parameters, a), out,
                with_commas(bytes, b), (double)bytes / (1 << 20));
    }
    gpt3_free(&m);
    st_free(&s);
    free(config);
    free(single);
    free(index);
    return ok;
}

static int cmd_convert(int argc, char **argv) {
    if (argc == 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fprintf(stderr, "usage: ./demo convert DIR OUT.ckpt\n"
                "Converts a Hugging Face GPT-2 (any size, or a fine-tune of one) into a gpt3.h checkpoint: DIR holds\n"
                "config.json and model.safetensors (or model.safetensors.index.json and its shards), F32, F16 or BF16,\n"
                "as the hub serves them. The same checkpoint, bit for bit, as dev/convert_hf_gpt2.py (the reference).\n");
        return 0;
    }
    if (argc != 2 || argv[0][0] == '-' || argv[1][0] == '-') {
        fprintf(stderr, "demo convert: give the Hugging Face folder and the checkpoint to write: ./demo convert DIR "
                "OUT.ckpt (./demo convert --help says more)\n");
        return 1;
    }
    return !hf_convert(argv[0], argv[1]);
}

/* ------------------------------------------------------------------------ */
/* plan: the road to GPT-3 175B, on paper                                   */
/*                                                                          */
/* Training compute is 6 N D FLOPs for N parameters and D tokens (2 N D in */
/* the forward, 4 N D in the backward: Kaplan et al. 2020), which is how    */
/* the GPT-3 paper's Table D.1 counts it. Memory per device is counted as   */
/* gpt3.h trains, in float32: 4 bytes a parameter, 4 a gradient, 8 for      */
/* AdamW's two moments (16 N in all), and the activations gpt3_training_   */
/* bytes counts for one micro-batch (no recomputation). With d data-        */
/* parallel replicas, t-way tensor and p-way pipeline parallelism (d t p    */
/* devices), a device holds N / (t p) of the parameters; ZeRO (Rajbhandari  */
/* et al. 2020) then shards over the d replicas: stage 1 AdamW's moments,   */
/* stage 2 the gradients too, stage 3 the parameters too. Tensor            */
/* parallelism (Megatron-LM) splits each layer's products and most of their */
/* activations t ways; a pipeline stage holds L / p layers and, with 1F1B   */
/* scheduling, up to p micro-batches of their activations: so a device      */
/* holds 1 / t of a micro-batch's activations.                              */

typedef struct { const char *name; int data, tensor, pipeline, zero; } PlanLayout;

/* Bytes a device holds: parameters, gradients, AdamW's moments, activations. */
static void plan_memory(const PlanLayout *l, double params, double activations, double bytes[4]) {
    double shard = params / ((double)l->tensor * l->pipeline), d = l->data;
    bytes[0] = 4 * shard / (l->zero >= 3 ? d : 1);
    bytes[1] = 4 * shard / (l->zero >= 2 ? d : 1);
    bytes[2] = 8 * shard / (l->zero >= 1 ? d : 1);
    bytes[3] = activations / l->tensor;
}

/* Table D.1's columns for one model: parameters, FLOPs, PF-days. */
static void plan_compute(const GPT3Config *cfg, double tokens, double *params, double *flops, double *pf_days) {
    *params = (double)gpt3_num_parameters(cfg);
    *flops = 6.0 * *params * tokens;
    *pf_days = *flops / (1e15 * 86400.0);
}

/* The paper's Table D.1, computed: every GPT-3 model on 300B tokens. */
static void plan_table(double tokens) {
    static const char *models[] = {"small", "medium", "large", "xl", "2.7b", "6.7b", "13b", "175b"};
    printf("model   parameters       tokens     FLOPs (6 N D)  PF-days\n");
    for (int i = 0; i < COUNT(models); i++) {
        GPT3Config cfg;
        double params, flops, pf_days;
        gpt3_preset(&cfg, models[i]);
        plan_compute(&cfg, tokens, &params, &flops, &pf_days);
        printf("%-7s %15.0f  %9.3g  %13.3g  %8.3g\n", models[i], params, tokens, flops, pf_days);
    }
}

/* The largest power of two up to limit that divides n. */
static int power_of_two_dividing(int n, int limit) {
    int p = 1;
    while (p * 2 <= limit && n % (p * 2) == 0) p *= 2;
    return p;
}

static int cmd_plan(int argc, char **argv) {
    const char *model = "175b";
    int gpus = 1024, tensor = UNSET, pipeline = UNSET, micro = 1, table = 0;
    float memory_gb = 80.0f, tflops = 312.0f, utilisation = 0.4f, tokens_b = 300.0f;
    Option opts[] = {
        {"model", OPT_STRING, &model, "preset (./demo train --help lists them)"},
        {"gpus", OPT_INT, &gpus, "devices in all"},
        {"gpu-memory", OPT_FLOAT, &memory_gb, "GB of memory a device"},
        {"tflops", OPT_FLOAT, &tflops, "a device's peak, TFLOP/s (A100's bf16 tensor cores: 312)"},
        {"utilisation", OPT_FLOAT, &utilisation, "the share of the peak a training step reaches"},
        {"tokens", OPT_FLOAT, &tokens_b, "training tokens, billions (the paper's 300)"},
        {"tensor", OPT_INT, &tensor, "tensor-parallel ways t (Megatron-LM; default: up to 8 that divide the devices and heads)"},
        {"pipeline", OPT_INT, &pipeline, "pipeline stages p (default: up to 16 that divide the rest and at most L)"},
        {"micro-batch", OPT_INT, &micro, "sequences a device runs at a time"},
        {"table", OPT_SWITCH, &table, "instead: the paper's Table D.1 (compute of every GPT-3 model), computed"},
    };
    int rc = parse_flags("plan", "What training a GPT-3 takes: compute (6 N D), time on N devices, and memory per device "
                         "under data parallelism, ZeRO 1-3, tensor and pipeline parallelism.", argc, argv, opts, COUNT(opts));
    if (rc) return rc == 2 ? 0 : 1;
    if (table) {
        plan_table(1e9 * tokens_b);
        return 0;
    }
    GPT3Config cfg;
    if (gpt3_preset(&cfg, model) != GPT3_OK) {
        fprintf(stderr, "demo plan: no model preset '%s'; the presets:", model);
        for (int i = 0; gpt3_preset_name(i); i++) fprintf(stderr, " %s", gpt3_preset_name(i));
        fprintf(stderr, "\n");
        return 1;
    }
    if (tensor == UNSET) /* 175B on 1024 devices: 8 x 16, as Megatron-LM's runs of that size */
        for (tensor = power_of_two_dividing(gpus, 8); cfg.num_heads % tensor != 0;) tensor /= 2;
    if (pipeline == UNSET && tensor > 0 && gpus % tensor == 0)
        pipeline = power_of_two_dividing(gpus / tensor, cfg.num_layers < 16 ? cfg.num_layers : 16);
    if (pipeline == UNSET) pipeline = 1;
    if (!check_positive("plan", "gpus", gpus, 1e9) || !check_positive("plan", "gpu-memory", memory_gb, 1e9) ||
        !check_positive("plan", "tflops", tflops, 1e9) || !check_positive("plan", "utilisation", utilisation, 1) ||
        !check_positive("plan", "tokens", tokens_b, 1e9) || !check_positive("plan", "tensor", tensor, 1e6) ||
        !check_positive("plan", "pipeline", pipeline, cfg.num_layers) || !check_positive("plan", "micro-batch", micro, 1e6))
        return 1;
    if (gpus % (tensor * pipeline) != 0) {
        fprintf(stderr, "demo plan: --gpus %d is not a multiple of --tensor x --pipeline = %d: give a multiple, or "
                "other ways\n", gpus, tensor * pipeline);
        return 1;
    }
    double params, flops, pf_days, tokens = 1e9 * tokens_b;
    plan_compute(&cfg, tokens, &params, &flops, &pf_days);
    double seconds = flops / ((double)gpus * tflops * 1e12 * utilisation);
    size_t train = gpt3_training_bytes(&cfg, micro, cfg.max_seq_len);
    if (!train) {
        fprintf(stderr, "demo plan: a micro-batch of %d x %d tokens is too large to count\n", micro, cfg.max_seq_len);
        return 1;
    }
    double activations = (double)train - 16.0 * params;
    printf("GPT-3 %s: L %d, C %d, NH %d, V %d, context %d: %.0f parameters\n", model, cfg.num_layers, cfg.channels,
           cfg.num_heads, cfg.vocab_size, cfg.max_seq_len, params);
    printf("training compute: 6 N D = 6 x %.4g x %.3g tokens = %.3g FLOPs = %.3g PF-days\n", params, tokens, flops,
           pf_days);
    printf("on %d devices of %g TFLOP/s at %.0f%% of it: %.3g s = %.1f days\n\n", gpus, tflops, 100 * utilisation,
           seconds, seconds / 86400);
    printf("memory per device, GB (float32: 4 bytes a parameter, 4 a gradient, 8 AdamW's moments; activations of\n"
           "%d x %d tokens as gpt3.h keeps them); data x tensor x pipeline = %d devices:\n", micro, cfg.max_seq_len, gpus);
    int dp = gpus / (tensor * pipeline);
    PlanLayout layouts[] = {
        {"data parallel", gpus, 1, 1, 0}, {"+ ZeRO-1", gpus, 1, 1, 1}, {"+ ZeRO-2", gpus, 1, 1, 2},
        {"+ ZeRO-3", gpus, 1, 1, 3},      {"tensor + pipeline", dp, tensor, pipeline, 0},
        {"+ ZeRO-1", dp, tensor, pipeline, 1},
    };
    printf("%-18s %18s %10s %10s %10s %12s %10s  fits %g GB\n", "layout", "d x t x p", "params", "grads", "AdamW",
           "activations", "total", memory_gb);
    for (int i = 0; i < COUNT(layouts); i++) {
        double bytes[4];
        char ways[40];
        plan_memory(&layouts[i], params, activations, bytes);
        double total = bytes[0] + bytes[1] + bytes[2] + bytes[3];
        snprintf(ways, sizeof(ways), "%d x %d x %d", layouts[i].data, layouts[i].tensor, layouts[i].pipeline);
        printf("%-18s %18s %10.2f %10.2f %10.2f %12.2f %10.2f  %s\n", layouts[i].name, ways, bytes[0] / 1e9,
               bytes[1] / 1e9, bytes[2] / 1e9, bytes[3] / 1e9, total / 1e9, total <= 1e9 * memory_gb ? "yes" : "no");
    }
    printf("\nbuilt here: data parallelism and ZeRO-1 (make mpi; mpirun -np N ./demo train --zero 1); "
           "ZeRO-2/3, tensor and pipeline parallelism are on paper\n");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The main job                                                             */

static const char *corpus_files[] = {"README.md", "gpt3.h", "demo.c", "test_gpt3.c"};

static int cmd_main_job(void) {
    const char *dir = "demo_out";
    char corpus_path[256], enc[256], voc[256], prefix[256];
    snprintf(corpus_path, sizeof(corpus_path), "%s/corpus.txt", dir);
    snprintf(enc, sizeof(enc), "%s/encoder.json", dir);
    snprintf(voc, sizeof(voc), "%s/vocab.bpe", dir);
    snprintf(prefix, sizeof(prefix), "%s/corpus", dir);
    fprintf(stderr, "== gpt3.h: train a small GPT-3 from scratch on this project's own source and documentation\n\n");
    /* 1. the corpus: the files of this repository */
    size_t total = 0, n;
    unsigned char *corpus = NULL;
    for (int i = 0; i < COUNT(corpus_files); i++) {
        unsigned char *text = read_file(corpus_files[i], &n);
        if (!text) {
            fprintf(stderr, "demo: run ./demo from the repository's folder (it reads %s)\n", corpus_files[i]);
            free(corpus);
            return 1;
        }
        unsigned char *grown = (unsigned char *)realloc(corpus, total + n + 1);
        if (!grown) { free(text); free(corpus); return fail("corpus", GPT3_ERR_NOMEM); }
        corpus = grown;
        memcpy(corpus + total, text, n);
        total += n;
        free(text);
    }
    make_directory(dir);
    int lock = lock_folder("(the main job)", dir);
    if (lock < 0) { free(corpus); return 1; }
    /* 2. a BPE tokenizer learned from it, and the token files */
    GPT3Tokenizer tok;
    double t0 = now_seconds();
    int rc = gpt3_tokenizer_train(&tok, corpus, total, 512);
    if (rc == GPT3_OK) rc = gpt3_tokenizer_save(&tok, enc, voc);
    if (rc != GPT3_OK) {
        free(corpus);
        gpt3_tokenizer_free(&tok);
        unlock_folder(lock);
        return fail("bpe", rc);
    }
    fprintf(stderr, "1. corpus: %s, %zu bytes\n2. tokenizer: a %d-token BPE learned from it in %.1f s -> %s, %s\n",
            "README.md gpt3.h demo.c test_gpt3.c", total, tok.vocab_size, now_seconds() - t0, enc, voc);
    fprintf(stderr, "3. ");
    rc = prepare_tokens(&tok, corpus, total, 0.1, prefix);
    free(corpus);
    if (rc) { gpt3_tokenizer_free(&tok); unlock_folder(lock); return 1; }
    /* 3. the model: "mini" (4 layers, layers 1 and 3 banded with W 32) */
    TrainArgs a = train_defaults();
    a.data = prefix;
    a.out = dir;
    a.model = "mini";
    a.seq = 128;
    a.steps = 2000;
    a.warmup = 25;
    a.save_every = 250;
    a.lr = 2e-3f;
    GPT3Tokens train, val;
    GPT3Config cfg;
    GPT3 m;
    GPT3TrainState st = {0, 0, 0, tok.id};
    GPT3Sampler sampler;
    memset(&m, 0, sizeof(m));
    if (load_data(prefix, &train, &val)) { gpt3_tokenizer_free(&tok); unlock_folder(lock); return 1; }
    if (train_config(&a, train.vocab_size, &cfg) || (rc = gpt3_init(&m, &cfg, (uint64_t)a.seed)) != GPT3_OK ||
        (rc = gpt3_sampler_init(&sampler, cfg.vocab_size, 0.8f, 0, 0.95f, 7)) != GPT3_OK) {
        if (rc != GPT3_OK) fail("the model", rc);
        gpt3_free(&m);
        gpt3_tokens_free(&train);
        gpt3_tokens_free(&val);
        gpt3_tokenizer_free(&tok);
        unlock_folder(lock);
        return 1;
    }
    fprintf(stderr, "4. model: GPT-3 \"mini\": L %d, C %d, NH %d, context %d, layers 1 and 3 locally banded (W %d), V %d: %zu parameters\n",
            cfg.num_layers, cfg.channels, cfg.num_heads, cfg.max_seq_len, cfg.local_window, cfg.vocab_size, m.num_parameters);
    const char *prompt = "The model";
    float before = evaluate(&m, &val, a.batch, a.seq, a.eval_batches);
    char val_path[300], curve[256];
    int T = cfg.max_seq_len, early, late;
    double *loss_before = (double *)calloc((size_t)2 * T, sizeof(double)), *loss_after = loss_before + T;
    snprintf(val_path, sizeof(val_path), "%s.val.tok", prefix);
    rc = loss_before ? position_losses(&m, val_path, loss_before) : GPT3_ERR_NOMEM;
    if (rc != GPT3_OK) fail(val_path, rc);
    fprintf(stderr, "\nbefore training: validation loss %.3f (a uniform guess is ln %d = %.3f). It writes:\n\n", before,
            cfg.vocab_size, log((double)cfg.vocab_size));
    generate(&m, &tok, prompt, 60, &sampler, 1, 1, 1);
    fprintf(stderr, "\n\n5. training: B %d, T %d, %d steps, AdamW, peak lr %g, warmup %d, cosine to 10%%\n",
            a.batch, a.seq, a.steps, a.lr, a.warmup);
    if (rc == GPT3_OK) rc = run_training(&a, &m, &train, &val, &st, dir);
    if (rc == GPT3_OK) {
        float after = evaluate(&m, &val, a.batch, a.seq, a.eval_batches);
        fprintf(stderr, "after training: validation loss %.3f (was %.3f). It writes:\n\n", after, before);
        generate(&m, &tok, prompt, 200, &sampler, 1, 1, 1);
        if ((rc = position_losses(&m, val_path, loss_after)) != GPT3_OK) fail(val_path, rc);
    }
    if (rc == GPT3_OK) {
        double score = context_score(loss_after, T, &early, &late);
        fprintf(stderr, "\n\n6. in-context learning: on windows of validation text, the loss %s (before training: "
                "%.2f to %.2f).\n   The more of a text it has read, the better it predicts the next token, with no "
                "gradient step. Olsson et al.'s score,\n   token %d minus token %d (past what the last few tokens tell): "
                "%+.3f (was %+.3f). ./demo eval --induction looks for induction heads.\n",
                loss_by_position(loss_after, T, curve, sizeof(curve)), loss_before[0], loss_before[T - 1], late + 1,
                early + 1, score, context_score(loss_before, T, &early, &late));
        fprintf(stderr, "\nwritten in %s/: model.ckpt (the parameters), model.ckpt.state (to resume), "
                "metrics.tsv (the log), loss.svg (the loss curves: open it in a browser), encoder.json + vocab.bpe\n",
                dir);
        fprintf(stderr, "next:\n  ./demo generate --model %s/model.ckpt --prompt \"static int\" --max-tokens 300\n"
                "  ./demo train --data %s --out %s --steps 4000 --resume       (train further)\n"
                "  ./demo help\n", dir, prefix, dir);
    }
    free(loss_before);
    gpt3_sampler_free(&sampler);
    gpt3_free(&m);
    gpt3_tokens_free(&train);
    gpt3_tokens_free(&val);
    gpt3_tokenizer_free(&tok);
    unlock_folder(lock);
    return rc;
}

/* ------------------------------------------------------------------------ */

/* A command's status, unless what it wrote to stdout did not all arrive
   (a full disk, a closed pipe): then an error. */
static int stdout_written(int status) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return status;
    fprintf(stderr, "demo: writing the output failed: %s\n", strerror(errno));
    return 1;
}

static void print_help(void) {
    fprintf(stderr,
            "gpt3.h demo: GPT-3 in one C header\n\n"
            "  ./demo                 train a small GPT-3 on this project's own text and show it writing\n"
            "  ./demo prepare         text file -> token files (train/validation split)\n"
            "  ./demo train           train a model on token files, with checkpoints and --resume\n"
            "  ./demo generate        continue a prompt, streaming tokens\n"
            "  ./demo encode          stdin bytes -> token ids\n"
            "  ./demo decode          token ids on stdin -> bytes\n"
            "  ./demo bpe-train       learn a byte-level BPE from a text file\n"
            "  ./demo finetune        fine-tune on a task (classify, ner, generate); alone: the built-in examples\n"
            "  ./demo predict         a fine-tuned model on new data: a prediction a line, streaming\n"
            "  ./demo eval            zero-, one- and few-shot evaluation, as the GPT-3 paper does it\n"
            "  ./demo convert         Hugging Face GPT-2 weights (safetensors: F32, F16, BF16, sharded) -> a checkpoint\n"
            "  ./demo attention       every head's attention on a text, drawn (SVG), and its induction score\n"
            "  ./demo bench           speed and memory: training, matmuls, attention, generation, tokenizer\n"
            "  ./demo plan            what training GPT-3 175B takes: compute, time, memory per device\n\n"
            "./demo COMMAND --help lists a command's flags.\n");
}

static int run_command(int argc, char **argv) {
    if (argc < 2) return stdout_written(cmd_main_job());
    const char *cmd = argv[1];
    struct { const char *name; int (*run)(int, char **); } commands[] = {
        {"prepare", cmd_prepare}, {"train", cmd_train}, {"generate", cmd_generate},
        {"encode", cmd_encode}, {"decode", cmd_decode}, {"bpe-train", cmd_bpe_train},
        {"bench", cmd_bench}, {"finetune", cmd_finetune}, {"predict", cmd_predict}, {"eval", cmd_eval},
        {"convert", cmd_convert},
        {"attention", cmd_attention}, {"plan", cmd_plan},
    };
    for (int i = 0; i < COUNT(commands); i++)
        if (strcmp(cmd, commands[i].name) == 0) return stdout_written(commands[i].run(argc - 2, argv + 2));
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        print_help();
        return 0;
    }
    fprintf(stderr, "demo: unknown command '%s'\n\n", cmd);
    print_help();
    return 1;
}

/* With MPI (make mpi), every process that mpirun starts runs the same
   command; on more than one, only train. A process that fails ends the job
   (MPI_Abort), so that none waits for it in a collective; an interruption
   (130) every process agrees on, and they end together. Started without
   mpirun (none of the variables it sets), the MPI build is the plain one:
   MPI is not started at all. The plain build started by mpirun on several
   processes says so: each copy would train alone. */
static int started_by_mpirun(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (int i = 0; i < COUNT(vars); i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

#ifndef GPT3_MPI
/* How many copies mpirun started (Open MPI's and MPICH's variables). */
static int mpirun_copies(void) {
    const char *size = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    return size ? atoi(size) : 1;
}
#endif

int main(int argc, char **argv) {
#ifdef GPT3_MPI
    if (!started_by_mpirun()) return run_command(argc, argv);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_ranks);
    if (mpi_ranks > 1 && (argc < 2 || strcmp(argv[1], "train") != 0)) {
        if (mpi_rank == 0)
            fprintf(stderr, "demo: on %d processes only train runs (mpirun -np N ./demo train ...); run the other "
                    "commands as one process\n", mpi_ranks);
        MPI_Finalize();
        return 1;
    }
    int status = run_command(argc, argv);
    if (status != 0 && status != 130 && mpi_ranks > 1) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize();
    return status;
#else
    if (started_by_mpirun() && mpirun_copies() > 1) {
        const char *rank = getenv("OMPI_COMM_WORLD_RANK") ? getenv("OMPI_COMM_WORLD_RANK") : getenv("PMI_RANK");
        if (!rank || atoi(rank) == 0)
            fprintf(stderr, "demo: mpirun started %d copies of a ./demo built without MPI, and each would run alone: "
                    "build it with make mpi (Open MPI: apt install openmpi-bin libopenmpi-dev)\n", mpirun_copies());
        return 1;
    }
    return run_command(argc, argv);
#endif
}
