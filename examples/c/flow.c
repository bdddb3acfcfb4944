/*
 * The whole flow through the C API: convert a Hugging Face checkpoint folder to GGUF (F16),
 * quantize it to Q4_0, load it, generate a few tokens with streaming, print the result and the
 * stop reason.
 *
 *   flow [CHECKPOINT_DIR] [OUT_DIR] [PROMPT]
 *
 * CHECKPOINT_DIR defaults to tests/fixtures/hf/gpt2 (run from the repository root): a tiny random
 * GPT-2, so the text is gibberish.
 *
 * Build (from the repository root, after `cargo build`):
 *   cc -Iinclude examples/c/flow.c -Ltarget/debug -lferrollm -Wl,-rpath,$PWD/target/debug -o flow
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ferrollm.h"

static int fail(const char *what, ferrollm_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, ferrollm_status_name(status), ferrollm_last_error());
    return 1;
}

static bool on_progress(const ferrollm_progress *p, void *user_data) {
    (void)user_data;
    fprintf(stderr, "\r%s %llu/%llu %-40s", p->stage, (unsigned long long)p->current,
            (unsigned long long)p->total, p->tensor);
    if (p->current == p->total) fputc('\n', stderr);
    return true;
}

static bool on_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static const char *stop_reason_name(ferrollm_stop_reason r) {
    switch (r) {
    case FERROLLM_STOP_END_TOKEN: return "end token";
    case FERROLLM_STOP_MAX_LENGTH: return "max length";
    case FERROLLM_STOP_STOP_WORD: return "stop word";
    case FERROLLM_STOP_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

int main(int argc, char **argv) {
    const char *checkpoint = argc > 1 ? argv[1] : "tests/fixtures/hf/gpt2";
    const char *out_dir = argc > 2 ? argv[2] : "ferrollm-flow";
    const char *prompt = argc > 3 ? argv[3] : "Hello";
    int rc = 1;
    ferrollm_status st;
    ferrollm_converter *converter = NULL;
    char *converted = NULL;
    char *quantized = NULL;
    ferrollm_model *model = NULL;
    ferrollm_session *session = NULL;
    ferrollm_generation *result = NULL;

    printf("ferrollm %s (ABI %u)\n", ferrollm_version(), ferrollm_abi_version());
    mkdir(out_dir, 0777);

    /* 1. Convert the checkpoint (architecture detected from config.json) to an F16 GGUF file in
     *    out_dir; the library names the file. NULL params = the defaults (GGUF, F16). */
    st = ferrollm_converter_open(checkpoint, &converter);
    if (st != FERROLLM_OK) { rc = fail("open the checkpoint", st); goto done; }
    ferrollm_arch arch;
    ferrollm_converter_arch(converter, &arch);
    st = ferrollm_converter_convert(converter, out_dir, NULL, on_progress, NULL, &converted);
    if (st != FERROLLM_OK) { rc = fail("convert", st); goto done; }
    printf("converted: %s (architecture %u)\n", converted, arch);

    /* 2. Quantize to Q4_0 (GGUF) into out_dir. */
    st = ferrollm_quantize(converted, out_dir, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF,
                           on_progress, NULL, &quantized);
    if (st != FERROLLM_OK) { rc = fail("quantize", st); goto done; }
    printf("quantized: %s\n", quantized);

    /* 3. Load it (defaults: memory-mapped, architecture from the file). */
    st = ferrollm_model_load(quantized, NULL, &model);
    if (st != FERROLLM_OK) { rc = fail("load", st); goto done; }

    /* 4. A session, and a short generation streamed to standard output. */
    st = ferrollm_session_new(model, NULL, &session);
    if (st != FERROLLM_OK) { rc = fail("session", st); goto done; }
    ferrollm_generate_params params;
    ferrollm_generate_default_params(&params);
    params.max_new_tokens = 16;
    printf("prompt: %s\n--- streamed:\n", prompt);
    st = ferrollm_session_generate(session, prompt, &params, on_piece, NULL, &result);
    if (st != FERROLLM_OK) { rc = fail("generate", st); goto done; }

    ferrollm_stop_reason reason;
    size_t n_tokens = 0;
    const uint32_t *tokens = NULL;
    ferrollm_generation_info(result, &reason, NULL, NULL, NULL, NULL);
    ferrollm_generation_tokens(result, &tokens, &n_tokens);
    printf("\n--- result: %s\n", ferrollm_generation_text(result));
    printf("tokens: %zu\nstop reason: %s\n", n_tokens, stop_reason_name(reason));
    rc = 0;

done:
    ferrollm_generation_free(result);
    ferrollm_session_free(session);
    ferrollm_model_free(model);
    ferrollm_string_free(quantized);
    ferrollm_string_free(converted);
    ferrollm_converter_free(converter);
    return rc;
}
