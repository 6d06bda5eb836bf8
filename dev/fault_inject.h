/* fault_inject.h - make one chosen allocation, or one chosen write, of a
   program fail.

   Included before a program's own code with the compiler's -include, it
   sends the program's calls (and gpt3.h's, which allocates through malloc
   and writes through stdio by default) through counting wrappers:

     cc -include dev/fault_inject.h ... demo.c -lm

   FAULT_ALLOC_FAIL=k   the k-th allocation (malloc, calloc, realloc,
                        strdup; 1, 2, ...) returns NULL, as when memory
                        runs out; the others succeed
   FAULT_WRITE_FAIL=k   the k-th write to a file fails as on a full disk:
                        opening a file to write (fopen "w" or "a"), writing
                        to it (fwrite, fprintf, fputs, fputc), fflush,
                        fclose, rename. A stream whose write failed stays
                        failed: its ferror, fflush and fclose report it.
                        Streams the program did not open to write (stdout,
                        stderr, files read) are not counted.
   FAULT_COUNT=1        print the number of allocations and writes at exit
   FAULT_STACK=1        print the stack of the failed call (in a build with
                        a sanitizer, which provides the printer)

   When the k-th call fails it says so on stderr ("fault_inject: allocation
   k failed", "fault_inject: write k failed"), so that a sweep over k
   (dev/fault_sweep.sh) knows whether its failure was reached. Counting is
   process-wide and atomic, so OpenMP's threads may allocate too. */
#ifndef FAULT_INJECT_H
#define FAULT_INJECT_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void __sanitizer_print_stack_trace(void) __attribute__((weak));

enum { FAULT_ALLOC, FAULT_WRITE };
static long fault_count[2];
static long fault_fail[2] = {-1, -1}; /* -1: not read from the environment yet */

static void fault_report(void) {
    fprintf(stderr, "fault_inject: %ld allocations, %ld writes\n", fault_count[FAULT_ALLOC], fault_count[FAULT_WRITE]);
}

/* Is this call (of kind FAULT_ALLOC or FAULT_WRITE) the one to fail? */
static int fault_now(int kind) {
    if (fault_fail[kind] < 0) {
        const char *alloc = getenv("FAULT_ALLOC_FAIL"), *write = getenv("FAULT_WRITE_FAIL");
        const char *count = getenv("FAULT_COUNT");
        if (fault_fail[FAULT_ALLOC] < 0 && fault_fail[FAULT_WRITE] < 0 && count && atoi(count)) atexit(fault_report);
        fault_fail[FAULT_ALLOC] = alloc ? atol(alloc) : 0;
        fault_fail[FAULT_WRITE] = write ? atol(write) : 0;
    }
    long k = __atomic_add_fetch(&fault_count[kind], 1, __ATOMIC_SEQ_CST);
    if (k != fault_fail[kind]) return 0;
    fprintf(stderr, "fault_inject: %s %ld failed\n", kind == FAULT_ALLOC ? "allocation" : "write", k);
    if (getenv("FAULT_STACK") && __sanitizer_print_stack_trace) __sanitizer_print_stack_trace();
    return 1;
}

/* ---- allocations ---- */
static inline void *fault_malloc(size_t n) { return fault_now(FAULT_ALLOC) ? NULL : malloc(n); }
static inline void *fault_calloc(size_t count, size_t n) { return fault_now(FAULT_ALLOC) ? NULL : calloc(count, n); }
static inline void *fault_realloc(void *p, size_t n) { return fault_now(FAULT_ALLOC) ? NULL : realloc(p, n); }
static inline char *fault_strdup(const char *s) {
    char *copy = (char *)fault_malloc(strlen(s) + 1);
    return copy ? strcpy(copy, s) : NULL;
}

/* ---- writes ---- */
/* The streams opened to write (only those are counted), and which of them
   had a write fail. */
static struct { FILE *f; int failed; } fault_streams[256];

static int fault_stream(FILE *f) {
    for (int i = 0; f && i < 256; i++)
        if (fault_streams[i].f == f) return i;
    return -1;
}
/* Does this write to f fail (now, or because an earlier one did)? */
static int fault_write_fails(FILE *f) {
    int i = fault_stream(f);
    if (i < 0) return 0;
    if (!fault_streams[i].failed && !fault_now(FAULT_WRITE)) return 0;
    fault_streams[i].failed = 1;
    errno = ENOSPC;
    return 1;
}

static inline FILE *fault_fopen(const char *path, const char *mode) {
    if (!strchr(mode, 'w') && !strchr(mode, 'a')) return fopen(path, mode);
    if (fault_now(FAULT_WRITE)) { errno = ENOSPC; return NULL; }
    FILE *f = fopen(path, mode);
    for (int i = 0; f && i < 256; i++)
        if (!fault_streams[i].f) { fault_streams[i].f = f; fault_streams[i].failed = 0; break; }
    return f;
}
static inline size_t fault_fwrite(const void *p, size_t size, size_t n, FILE *f) {
    return fault_write_fails(f) ? 0 : fwrite(p, size, n, f);
}
static inline int fault_fprintf(FILE *f, const char *format, ...) {
    if (fault_write_fails(f)) return -1;
    va_list args;
    va_start(args, format);
    int n = vfprintf(f, format, args);
    va_end(args);
    return n;
}
static inline int fault_fputs(const char *s, FILE *f) { return fault_write_fails(f) ? EOF : fputs(s, f); }
static inline int fault_fputc(int c, FILE *f) { return fault_write_fails(f) ? EOF : fputc(c, f); }
static inline int fault_fflush(FILE *f) { return fault_write_fails(f) ? EOF : fflush(f); }
static inline int fault_ferror(FILE *f) {
    int i = fault_stream(f);
    return (i >= 0 && fault_streams[i].failed) || ferror(f);
}
static inline int fault_fclose(FILE *f) {
    int failed = fault_write_fails(f), i = fault_stream(f);
    if (i >= 0) fault_streams[i].f = NULL;
    int rc = fclose(f);
    return failed ? EOF : rc;
}
static inline int fault_rename(const char *from, const char *to) {
    if (fault_now(FAULT_WRITE)) { errno = EIO; return -1; }
    return rename(from, to);
}

#define malloc(n) fault_malloc(n)
#define calloc(count, n) fault_calloc(count, n)
#define realloc(p, n) fault_realloc(p, n)
#define strdup(s) fault_strdup(s)
#define fopen(path, mode) fault_fopen(path, mode)
#define fwrite(p, size, n, f) fault_fwrite(p, size, n, f)
#define fprintf(...) fault_fprintf(__VA_ARGS__)
#define fputs(s, f) fault_fputs(s, f)
#define fputc(c, f) fault_fputc(c, f)
#define fflush(f) fault_fflush(f)
#define ferror(f) fault_ferror(f)
#define fclose(f) fault_fclose(f)
#define rename(from, to) fault_rename(from, to)
#endif
