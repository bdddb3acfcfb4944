/*
 * Bad input through the C API: missing files, unsupported architectures (in a model file and in a
 * checkpoint), a cancelled generation (FERROLLM_OK with FERROLLM_STOP_CANCELLED), a cancelled
 * quantization and conversion (FERROLLM_ERR_CANCELLED, no file left) and NULL handles — each with
 * the status and a message naming what is at fault.
 *
 *   errors MODEL_F16 UNSUPPORTED_MODEL OUT_DIR HF_DIR UNSUPPORTED_HF_DIR
 *
 * Run by tests/bindings.rs. Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferrollm.h"

static int passed, failed;

#define CHECK(name, cond)                                                                      \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
            printf("ok   %s\n", name);                                                         \
        } else {                                                                               \
            failed++;                                                                          \
            printf("FAIL %s (line %d): last error \"%s\"\n", name, __LINE__, ferrollm_last_error()); \
        }                                                                                      \
    } while (0)

static bool has(const char *needle) { return strstr(ferrollm_last_error(), needle) != NULL; }

static bool stop_after_two(const char *piece, size_t len, void *user_data) {
    (void)piece;
    (void)len;
    return ++*(int *)user_data < 2;
}

static bool cancel_on_second_report(const ferrollm_progress *p, void *user_data) {
    (void)p;
    return ++*(int *)user_data < 2;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: errors MODEL_F16 UNSUPPORTED_MODEL OUT_DIR HF_DIR UNSUPPORTED_HF_DIR\n");
        return 2;
    }
    const char *f16 = argv[1], *unsupported = argv[2], *out = argv[3];
    const char *hf = argv[4], *unsupported_hf = argv[5];
    ferrollm_converter *converter = NULL;
    char path[4096];
    ferrollm_status st;
    ferrollm_model *model = NULL;
    ferrollm_session *session = NULL;
    ferrollm_generation *result = NULL;
    char *written = NULL;
    int reports = 0;

    /* A missing file: I/O error naming the path; the out-pointer is not written. */
    snprintf(path, sizeof path, "%s/no-such-model.gguf", out);
    model = (ferrollm_model *)&model; /* a sentinel: must be left alone on failure */
    st = ferrollm_model_load(path, NULL, &model);
    CHECK("missing file: FERROLLM_ERR_IO naming the path", st == FERROLLM_ERR_IO && has(path));
    CHECK("missing file: out-pointer untouched", model == (ferrollm_model *)&model);
    model = NULL;

    /* An architecture ferrollm does not know. */
    st = ferrollm_model_load(unsupported, NULL, &model);
    CHECK("unsupported architecture: FERROLLM_ERR_UNSUPPORTED naming the file",
          st == FERROLLM_ERR_UNSUPPORTED && has(unsupported) && has("not supported"));

    /* Checkpoints: an unsupported architecture, a missing folder, a cancelled conversion. */
    st = ferrollm_converter_open(unsupported_hf, &converter);
    CHECK("unsupported checkpoint: FERROLLM_ERR_UNSUPPORTED naming the class",
          st == FERROLLM_ERR_UNSUPPORTED && has("FalconForCausalLM") && has("not supported") &&
              converter == NULL);
    snprintf(path, sizeof path, "%s/no-such-checkpoint", out);
    st = ferrollm_converter_open(path, &converter);
    CHECK("missing checkpoint: FERROLLM_ERR_IO naming the folder", st == FERROLLM_ERR_IO && has(path));
    st = ferrollm_converter_open(hf, &converter);
    CHECK("open checkpoint", st == FERROLLM_OK);
    snprintf(path, sizeof path, "%s/cancelled-f16.gguf", out);
    reports = 0;
    st = ferrollm_converter_convert(converter, path, NULL, cancel_on_second_report, &reports, &written);
    CHECK("cancelled conversion: FERROLLM_ERR_CANCELLED",
          st == FERROLLM_ERR_CANCELLED && has("cancelled") && written == NULL && reports == 2);
    CHECK("cancelled conversion: no file left", access(path, F_OK) != 0);
    st = ferrollm_converter_open_as(hf, 77, &converter);
    CHECK("open_as with a bad architecture", st == FERROLLM_ERR_INVALID_ARGUMENT && has("77"));
    ferrollm_converter_free(converter);
    converter = NULL;

    /* NULL handles and NULL required pointers. */
    st = ferrollm_session_new(NULL, NULL, &session);
    CHECK("NULL model", st == FERROLLM_ERR_INVALID_ARGUMENT && has("model must not be NULL"));
    st = ferrollm_session_generate(NULL, "x", NULL, NULL, NULL, &result);
    CHECK("NULL session", st == FERROLLM_ERR_INVALID_ARGUMENT && has("session must not be NULL"));
    st = ferrollm_quantizer_quantize(NULL, NULL, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF, NULL,
                                     NULL, NULL);
    CHECK("NULL quantizer", st == FERROLLM_ERR_INVALID_ARGUMENT && has("quantizer must not be NULL"));
    ferrollm_arch arch;
    st = ferrollm_converter_arch(NULL, &arch);
    CHECK("NULL converter", st == FERROLLM_ERR_INVALID_ARGUMENT && has("converter must not be NULL"));
    st = ferrollm_generation_info(NULL, NULL, NULL, NULL, NULL, NULL);
    CHECK("NULL result", st == FERROLLM_ERR_INVALID_ARGUMENT && has("result must not be NULL"));
    CHECK("NULL result text is NULL", ferrollm_generation_text(NULL) == NULL);
    st = ferrollm_model_load(NULL, NULL, &model);
    CHECK("NULL path", st == FERROLLM_ERR_INVALID_ARGUMENT && has("path must not be NULL"));
    ferrollm_model_free(NULL);
    ferrollm_session_free(NULL);
    ferrollm_generation_free(NULL);
    ferrollm_quantizer_free(NULL);
    ferrollm_converter_free(NULL);
    ferrollm_string_free(NULL);

    /* A cancelled quantization fails with FERROLLM_ERR_CANCELLED and leaves no file. */
    snprintf(path, sizeof path, "%s/cancelled-q4_0.gguf", out);
    reports = 0;
    st = ferrollm_quantize(f16, path, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF,
                           cancel_on_second_report, &reports, &written);
    CHECK("cancelled quantization: FERROLLM_ERR_CANCELLED",
          st == FERROLLM_ERR_CANCELLED && has("cancelled") && written == NULL);
    CHECK("cancelled quantization: the callback ran until it said no", reports == 2);
    CHECK("cancelled quantization: no file left", access(path, F_OK) != 0);

    /* A cancelled generation is not an error: OK, with stop reason FERROLLM_STOP_CANCELLED. */
    snprintf(path, sizeof path, "%s/errors-q4_0.gguf", out);
    st = ferrollm_quantize(f16, path, FERROLLM_TYPE_Q4_0, FERROLLM_CONTAINER_GGUF, NULL, NULL,
                           &written);
    CHECK("quantize", st == FERROLLM_OK && written != NULL && strcmp(written, path) == 0);
    st = ferrollm_model_load(path, NULL, &model);
    CHECK("load", st == FERROLLM_OK);
    st = ferrollm_session_new(model, NULL, &session);
    CHECK("session", st == FERROLLM_OK);
    ferrollm_generate_params gp;
    ferrollm_generate_default_params(&gp);
    gp.max_new_tokens = 20;
    int pieces = 0;
    st = ferrollm_session_generate(session, "Hello", &gp, stop_after_two, &pieces, &result);
    ferrollm_stop_reason reason = 99;
    const uint32_t *tokens = NULL;
    size_t n_tokens = 0;
    if (st == FERROLLM_OK) {
        ferrollm_generation_info(result, &reason, NULL, NULL, NULL, NULL);
        ferrollm_generation_tokens(result, &tokens, &n_tokens);
    }
    CHECK("cancelled generation: OK with FERROLLM_STOP_CANCELLED",
          st == FERROLLM_OK && reason == FERROLLM_STOP_CANCELLED && pieces == 2 && n_tokens >= 2 &&
              n_tokens < 20);

    /* Bad values: an out-of-range enum and an uninitialised parameter struct. */
    st = ferrollm_quantize(f16, NULL, 99, FERROLLM_CONTAINER_GGUF, NULL, NULL, NULL);
    CHECK("type 99", st == FERROLLM_ERR_INVALID_ARGUMENT && has("99"));
    ferrollm_generate_params zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    ferrollm_generation *none = NULL;
    st = ferrollm_session_generate(session, "Hello", &zeroed, NULL, NULL, &none);
    CHECK("struct_size 0", st == FERROLLM_ERR_INVALID_ARGUMENT && has("struct_size"));

    ferrollm_generation_free(result);
    ferrollm_session_free(session);
    ferrollm_model_free(model);
    ferrollm_string_free(written);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
