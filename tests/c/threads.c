/*
 * One model shared by 4 threads, each with its own session: every thread must get the same greedy
 * text (temperature 0) as a single-threaded run, for each of several prompts; and each thread
 * reads its own error messages.
 *
 *   threads MODEL
 *
 * Run by tests/bindings.rs. Prints "N passed, N failed"; exits 1 on any failure.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferrollm.h"

#define N_THREADS 4
#define N_PROMPTS 3
#define ROUNDS 2

static const char *const PROMPTS[N_PROMPTS] = {"Hello", "The quick brown fox", "Once upon a time"};
static char *expected[N_PROMPTS];
static const ferrollm_model *model;

struct job {
    int index;
    int failures;
    char message[512];
};

/* Greedy text of `prompt` in a fresh session; NULL (and `message` set) on failure. */
static char *greedy(const char *prompt, char *message, size_t message_len) {
    ferrollm_session_params sp;
    ferrollm_generate_params gp;
    ferrollm_session *session = NULL;
    ferrollm_generation *result = NULL;
    char *text = NULL;
    ferrollm_session_default_params(&sp);
    sp.threads = 1;
    ferrollm_generate_default_params(&gp);
    gp.temperature = 0.0f;
    gp.max_new_tokens = 12;
    ferrollm_status st = ferrollm_session_new(model, &sp, &session);
    if (st == FERROLLM_OK) st = ferrollm_session_generate(session, prompt, &gp, NULL, NULL, &result);
    if (st == FERROLLM_OK) {
        text = strdup(ferrollm_generation_text(result));
    } else {
        /* The message is the calling thread's own, whatever the other threads do. */
        snprintf(message, message_len, "%s: %s", ferrollm_status_name(st), ferrollm_last_error());
    }
    ferrollm_generation_free(result);
    ferrollm_session_free(session);
    return text;
}

static void *worker(void *arg) {
    struct job *job = arg;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N_PROMPTS; i++) {
            int p = (i + job->index) % N_PROMPTS; /* threads run different prompts at once */
            char *text = greedy(PROMPTS[p], job->message, sizeof job->message);
            if (text == NULL) {
                job->failures++;
                return NULL;
            }
            if (strcmp(text, expected[p]) != 0) {
                snprintf(job->message, sizeof job->message, "prompt %d: got \"%s\", expected \"%s\"",
                         p, text, expected[p]);
                job->failures++;
            }
            free(text);
            /* Error messages are per thread: each thread sees the path of its own failed call. */
            char path[64];
            snprintf(path, sizeof path, "/nonexistent/thread-%d-%d.gguf", job->index, i);
            ferrollm_model *none = NULL;
            ferrollm_status s = ferrollm_model_load(path, NULL, &none);
            const char *msg = ferrollm_last_error();
            if (s != FERROLLM_ERR_IO || strstr(msg, path) == NULL) {
                snprintf(job->message, sizeof job->message, "status %u, message \"%s\" lacks %s", s,
                         msg, path);
                job->failures++;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: threads MODEL\n");
        return 2;
    }
    int passed = 0, failed = 0;
    ferrollm_model *m = NULL;
    ferrollm_status st = ferrollm_model_load(argv[1], NULL, &m);
    if (st != FERROLLM_OK) {
        fprintf(stderr, "load: %s\n", ferrollm_last_error());
        return 1;
    }
    model = m;

    char message[512];
    for (int p = 0; p < N_PROMPTS; p++) {
        expected[p] = greedy(PROMPTS[p], message, sizeof message);
        if (expected[p] == NULL || expected[p][0] == '\0') {
            fprintf(stderr, "single-threaded generation failed: %s\n", message);
            return 1;
        }
    }
    /* The reference texts differ from each other, so a mix-up between threads would show. */
    if (strcmp(expected[0], expected[1]) == 0 && strcmp(expected[1], expected[2]) == 0) {
        fprintf(stderr, "every prompt gives the same text; the test could not see a mix-up\n");
        return 1;
    }

    pthread_t threads[N_THREADS];
    struct job jobs[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        jobs[t] = (struct job){.index = t, .failures = 0, .message = ""};
        if (pthread_create(&threads[t], NULL, worker, &jobs[t]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (int t = 0; t < N_THREADS; t++) {
        pthread_join(threads[t], NULL);
        if (jobs[t].failures == 0) {
            passed++;
            printf("ok   thread %d: %d greedy texts equal the single-threaded ones; its own "
                   "error messages\n", t, ROUNDS * N_PROMPTS);
        } else {
            failed++;
            printf("FAIL thread %d: %s\n", t, jobs[t].message);
        }
    }

    for (int p = 0; p < N_PROMPTS; p++) free(expected[p]);
    ferrollm_model_free(m);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
