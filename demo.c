/* demo.c - train a small GPT-3 from scratch and watch it learn.

   The model is the "tiny" teaching preset (2 layers, 64 channels, 4 heads,
   layer 1 locally banded with window 16), its tokens are bytes (V = 256),
   and its corpus is the short text below. It trains for a few hundred AdamW
   steps with GPT-3's learning-rate schedule, printing the falling loss, and
   shows a sample before and after. Build and run: `make run`. */
#define GPT3_IMPLEMENTATION
#include "gpt3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char corpus[] =
    "GPT-3 is a language model. It reads a text one token at a time and learns "
    "to predict the next token. The model is a stack of transformer blocks. "
    "Each block has attention and a small network. Attention lets a token look "
    "at the tokens before it. The small network thinks about each token alone. "
    "Between them, layer norm keeps the numbers in a good range, and the "
    "residual stream carries what the model knows from block to block.\n"
    "GPT-3 learns by gradient descent. The loss is the cross-entropy of the "
    "next token: the model pays for every token it did not expect. The "
    "gradient of the loss tells each weight which way to move, and the "
    "optimizer moves it a little. Adam keeps a running mean of the gradient "
    "and of its square, and weight decay pulls every weight towards zero.\n"
    "In GPT-3 the layers take turns: a dense layer sees the whole past, and a "
    "banded layer sees only a window of recent tokens. The banded layer is "
    "cheaper, and the dense layer still sees far back.\n"
    "After training, the model writes. It reads a prompt, predicts the next "
    "token, picks one at random from what it predicts, adds it to the text, "
    "and goes on. The temperature sets how bold the picks are: low is safe "
    "and dull, high is bold and wild.\n"
    "A language model learns what it reads. Give it stories and it tells "
    "stories; give it code and it writes code; give it this text and it "
    "talks about language models.\n";

#define B 8
#define T 64
#define STEPS 800

static double seconds(void) { /* wall clock */
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Write n_new bytes after the prompt: each step runs the model on the last
   T tokens and draws the next one from its logits at the last position. */
static void generate(GPT3 *m, const char *prompt, int n_new, GPT3Sampler *rng) {
    int tokens[T + 256], n = 0;
    for (const char *p = prompt; *p && n < T; p++) tokens[n++] = (unsigned char)*p;
    printf("  %s", prompt);
    for (int i = 0; i < n_new && n < T + 256; i++) {
        int start = n > T ? n - T : 0, len = n - start;
        if (gpt3_forward(m, tokens + start, NULL, 1, len) != GPT3_OK) break;
        int next = gpt3_sampler_sample(rng, m->logits + (size_t)(len - 1) * 256);
        tokens[n++] = next;
        putchar(next >= 32 && next < 127 ? next : next == '\n' ? ' ' : '?');
        fflush(stdout);
    }
    printf("\n");
}

int main(void) {
    GPT3Config cfg;
    GPT3 model;
    GPT3Rng data_rng;
    GPT3Sampler sample_rng;
    int inputs[B * T], targets[B * T], rc;
    int n_text = (int)strlen(corpus);

    gpt3_preset(&cfg, "tiny");
    if ((rc = gpt3_init(&model, &cfg, 1337)) != GPT3_OK) {
        fprintf(stderr, "demo: %s\n", gpt3_strerror(rc));
        return 1;
    }
    gpt3_rng_seed(&data_rng, 42);
    gpt3_sampler_init(&sample_rng, 256, 0.8f, 0, 1.0f, 7);
    printf("GPT-3 \"tiny\": L %d, C %d, NH %d, W %d, V %d: %zu parameters, %.1f MB to train at B %d, T %d\n",
           cfg.num_layers, cfg.channels, cfg.num_heads, cfg.local_window, cfg.vocab_size,
           model.num_parameters, gpt3_training_bytes(&cfg, B, T) / 1e6, B, T);
    printf("corpus: %d bytes of text held in demo.c\n\nbefore training:\n", n_text);
    generate(&model, "The model", 120, &sample_rng);
    printf("\n");

    double start = seconds();
    for (int step = 0; step < STEPS; step++) {
        /* a batch of B random windows of the text: targets are inputs shifted by one */
        for (int b = 0; b < B; b++) {
            int offset = (int)(gpt3_rng_u32(&data_rng) % (uint32_t)(n_text - T));
            for (int t = 0; t < T; t++) {
                inputs[b * T + t] = (unsigned char)corpus[offset + t];
                targets[b * T + t] = (unsigned char)corpus[offset + t + 1];
            }
        }
        float lr = gpt3_lr_schedule(step, 5e-3f, 40, STEPS);
        rc = gpt3_forward(&model, inputs, targets, B, T);
        gpt3_zero_grad(&model);
        if (rc == GPT3_OK) rc = gpt3_backward(&model);
        float norm = gpt3_clip_grad_norm(&model, 1.0f);
        if (rc == GPT3_OK) rc = gpt3_adamw_step(&model, lr, 0.9f, 0.95f, 1e-8f, 0.1f, step + 1);
        if (rc != GPT3_OK) {
            fprintf(stderr, "demo: step %d: %s\n", step, gpt3_strerror(rc));
            gpt3_free(&model);
            return 1;
        }
        if (step % 50 == 0 || step == STEPS - 1)
            printf("step %3d/%d  loss %.4f  lr %.2e  grad norm %.3f  %.0f ms/step\n", step + 1,
                   STEPS, model.mean_loss, lr, norm, 1000 * (seconds() - start) / (step + 1));
    }
    printf("\nafter training:\n");
    generate(&model, "The model", 120, &sample_rng);
    rc = gpt3_save(&model, "demo.ckpt");
    printf("\ncheckpoint: demo.ckpt (%s)\n", rc == GPT3_OK ? "saved" : gpt3_strerror(rc));
    gpt3_free(&model);
    return rc == GPT3_OK ? 0 : 1;
}
