/* test_mpi.c - the header's ZeRO-1 calls, on every rank of mpirun -np N
   (test_mpi.sh builds it with mpicc and runs it on 2 and 3 processes).
   Rank 0 prints one line a check; the exit status is 1 if any failed. */
#define GPT3_MPI
#define GPT3_IMPLEMENTATION
#include "gpt3.h"

#include <stdio.h>
#include <string.h>

static int rank, ranks, failed;

/* A check passes when it holds on every rank. */
static void check(int ok, const char *what) {
    int all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    failed += !all;
    if (rank == 0) printf("%s %s (%d processes)\n", all ? "ok" : "FAIL", what, ranks);
}

/* The same tiny model on every rank; each rank's batch differs. */
static void tiny_model(GPT3 *m, int *inputs, int *targets) {
    GPT3Config cfg = {8, 11, 3, 2, 8, 3};
    gpt3_init(m, &cfg, 7);
    for (int i = 0; i < 16; i++) {
        inputs[i] = (i * 7 + rank * 3) % 11;
        targets[i] = (i * 5 + rank + 1) % 11;
    }
}

/* Forward, backward, then the average across ranks. */
static int averaged_gradients(GPT3 *m, const int *inputs, const int *targets) {
    gpt3_forward(m, inputs, targets, 2, 8);
    gpt3_zero_grad(m);
    gpt3_backward(m);
    return gpt3_mpi_average_gradients(m, MPI_COMM_WORLD);
}

/* ZeRO-1 through the header's calls: the sharded model's saved run is the
   bits of the unsharded one's, and loading shares gives its slices. */
static void test_zero(void) {
    GPT3 whole, part, loaded;
    int inputs[16], targets[16];
    GPT3TrainState st = {2, 0, 0, 0}, back;
    tiny_model(&whole, inputs, targets);
    tiny_model(&part, inputs, targets);
    int rc = gpt3_adamw_shard(&part, rank, ranks);
    for (int step = 1; step <= 2 && rc == GPT3_OK; step++) {
        averaged_gradients(&whole, inputs, targets);
        averaged_gradients(&part, inputs, targets);
        gpt3_adamw_step(&whole, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
        gpt3_adamw_step(&part, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, step);
        rc = gpt3_mpi_gather_parameters(&part, MPI_COMM_WORLD);
    }
    int same = rc == GPT3_OK && memcmp(whole.params, part.params, whole.num_parameters * sizeof(float)) == 0;
    check(same, "ZeRO-1: shares updated apart and broadcast = the whole AdamW step, bit for bit");
    if (rank == 0) gpt3_save_run(&whole, &st, "test_mpi_whole.ckpt");
    rc = gpt3_mpi_save_run(&part, &st, "test_mpi_part.ckpt", MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    FILE *f = fopen("test_mpi_whole.ckpt.state", "rb"), *g = fopen("test_mpi_part.ckpt.state", "rb");
    int a = 0, b = 0;
    while (f && g && (a = fgetc(f)) == (b = fgetc(g)) && a != EOF) {}
    check(rc == GPT3_OK && f && g && a == EOF && b == EOF,
          "ZeRO-1: gpt3_mpi_save_run's state file = gpt3_save_run's of the unsharded model");
    if (f) fclose(f);
    if (g) fclose(g);
    int rc2 = gpt3_load_run_shard(&loaded, &back, "test_mpi_part.ckpt", rank, ranks);
    check(rc2 == GPT3_OK && loaded.adam_count == part.adam_count &&
          memcmp(loaded.adam_v, part.adam_v, part.adam_count * sizeof(float)) == 0,
          "ZeRO-1: each rank loads its share of the saved moments");
    gpt3_free(&loaded);
    /* a rank sharded otherwise than its communicator says: refused on all, none waits */
    if (rank == ranks - 1) gpt3_adamw_shard(&whole, 0, 1);
    else gpt3_adamw_shard(&whole, rank, ranks);
    int rc3 = gpt3_mpi_save_run(&whole, &st, "test_mpi_bad.ckpt", MPI_COMM_WORLD);
    int rc4 = gpt3_mpi_gather_parameters(&whole, MPI_COMM_WORLD);
    check(rc3 == GPT3_ERR_ARGUMENT && rc4 == GPT3_ERR_ARGUMENT,
          "ZeRO-1: a rank not sharded as the others: save and gather refused on every rank");
    gpt3_free(&whole);
    gpt3_free(&part);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        const char *files[] = {"test_mpi_whole.ckpt", "test_mpi_whole.ckpt.state", "test_mpi_part.ckpt",
                               "test_mpi_part.ckpt.state", "test_mpi_bad.ckpt", "test_mpi_bad.ckpt.state"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) remove(files[i]);
    }
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    test_zero();
    MPI_Finalize();
    return failed != 0;
}
