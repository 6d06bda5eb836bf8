/* fuzz_common.h - what dev/fuzz_gpt3.c and dev/fuzz_cli.c share: checks,
   the allocation budget, temporary files. Included after HARNESS's
   FUZZ_ID is known, and after the code under test (whose allocations
   were routed to fuzz_malloc, fuzz_calloc and fuzz_realloc). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#if defined(__GNUC__) || defined(__clang__)
#define FUZZ_UNUSED __attribute__((unused))
#else
#define FUZZ_UNUSED
#endif

#if FUZZ_ID != FUZZ_ID_seeds
void __sanitizer_print_stack_trace(void);
#define FUZZ_STACK() __sanitizer_print_stack_trace()
#else
#define FUZZ_STACK() ((void)0)
#endif

/* A broken invariant: say which, and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "==FUZZ== check failed: %s (%s:%d)\n", #cond,       \
                    __FILE__, __LINE__);                                        \
            fflush(stderr);                                                     \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* ---- the allocation budget ---- */
static size_t fuzz_alloc_total;  /* bytes requested while handling this input */
static size_t fuzz_alloc_budget; /* 0: no limit */

FUZZ_UNUSED static void fuzz_alloc_reset(size_t input_size, size_t base_mb) {
    const char *env = getenv("FUZZ_ALLOC_BUDGET_MB");
    if (env) base_mb = (size_t)strtoul(env, NULL, 10);
    fuzz_alloc_total = 0;
    fuzz_alloc_budget = base_mb ? (base_mb << 20) + 16 * input_size : 0;
}

/* No limit: a one-time setup (a tokenizer, a model) is not an input's. */
FUZZ_UNUSED static void fuzz_alloc_off(void) {
    fuzz_alloc_total = 0;
    fuzz_alloc_budget = 0;
}

static void fuzz_account(size_t n) {
    fuzz_alloc_total += n;
    if (fuzz_alloc_budget && fuzz_alloc_total > fuzz_alloc_budget) {
        fprintf(stderr,
                "==FUZZ== allocation budget exceeded: %zu bytes requested so far for this "
                "input (this request: %zu bytes, budget %zu)\n",
                fuzz_alloc_total, n, fuzz_alloc_budget);
        fflush(stderr);
        FUZZ_STACK();
        abort();
    }
}

FUZZ_UNUSED static void *fuzz_malloc(size_t n) {
    fuzz_account(n);
    return malloc(n);
}

FUZZ_UNUSED static void *fuzz_calloc(size_t count, size_t n) {
    if (n && count > SIZE_MAX / n) return NULL;
    fuzz_account(count * n);
    return calloc(count, n);
}

FUZZ_UNUSED static void *fuzz_realloc(void *p, size_t n) {
    fuzz_account(n);
    return realloc(p, n);
}

/* ---- temporary files ---- */
static const char *fuzz_tmpdir(void) {
    const char *dir = getenv("TMPDIR");
    return dir && *dir ? dir : "/tmp";
}

/* A path of this process: $TMPDIR/gpt3fuzz.<pid>.<tag> */
FUZZ_UNUSED static const char *fuzz_path(const char *tag) {
    static char paths[4][512];
    static int next;
    char *p = paths[next++ & 3];
    snprintf(p, sizeof(paths[0]), "%s/gpt3fuzz.%ld.%s", fuzz_tmpdir(), (long)getpid(), tag);
    return p;
}

FUZZ_UNUSED static void fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    if (fclose(f) != 0) { perror(path); abort(); }
}
#endif
