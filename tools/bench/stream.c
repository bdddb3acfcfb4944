/* STREAM-style memory bandwidth benchmark for tools/bench/compare.sh.
 *
 *   gcc -O3 -march=native -fopenmp -o stream tools/bench/stream.c && OMP_NUM_THREADS=2 ./stream [MiB]
 *
 * Kernels (each array is far larger than the last-level cache; default 1024 MiB):
 *   read   s += a[i] (as integers) bytes counted: 8 per element
 *   read_streams  the same bytes of `a`, each thread reading 8 far-apart sequences side by side
 *          (one line of each in turn): on this VM one core keeps more reads in flight with
 *          several sequences than with one (the hardware prefetcher follows each), so this reads
 *          faster than `read` and is the nearer estimate of what the memory can deliver
 *   copy   c[i] = a[i]            16 (STREAM's convention: read + write, no write-allocate)
 *   triad  a[i] = b[i] + q*c[i]   24
 * Each kernel runs REPS times; the best (highest) rate is printed, as STREAM does, and for the read
 * also the median ("read_median_gbs"): this VM's bandwidth drifts from second to second, so the
 * best of 7 is a peak, while a generation run averages over its whole second.
 * Output: one line per kernel, "read_gbs 12.345" (GB = 1e9 bytes), for scripts to parse.
 * Arrays are first-touched by the same threads that use them (NUMA-friendly static schedule),
 * 2 MiB-aligned and advised to use transparent huge pages (as ferrollm's repacked weights are), so
 * that TLB misses do not lower the rate. -O3 -march=native lets gcc vectorise the loops: with
 * scalar 8-byte loads one core cannot keep enough cache-line fills in flight to reach the
 * memory's rate (the first version, -O2, read 16.8 GB/s with 2 threads where ferrollm's F16
 * generation streams 18.8).
 */
#include <sys/mman.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* the doubles of `a`, read as integers: integer adds take one cycle, so the read loop is bound by
   memory, not by the latency of floating-point additions */
typedef uint64_t __attribute__((may_alias)) word;

#define REPS 7
/* sequences each thread reads side by side in the multi-stream read */
#define STREAMS 8

static double now(void) { return omp_get_wtime(); }

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
    size_t n = mib * 1024 * 1024 / sizeof(double);
    size_t bytes = n * sizeof(double), huge = 2u << 20;
    bytes = (bytes + huge - 1) / huge * huge;
    double *a = aligned_alloc(huge, bytes), *b = aligned_alloc(huge, bytes),
           *c = aligned_alloc(huge, bytes);
    if (!a || !b || !c) {
        fprintf(stderr, "cannot allocate 3 x %zu MiB\n", mib);
        return 1;
    }
    madvise(a, bytes, MADV_HUGEPAGE);
    madvise(b, bytes, MADV_HUGEPAGE);
    madvise(c, bytes, MADV_HUGEPAGE);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        a[i] = 1.0;
        b[i] = 2.0;
        c[i] = 0.0;
    }
    double best_read = 0, best_copy = 0, best_triad = 0, best_streams = 0, sink = 0, reads[REPS],
           streams[REPS];
    /* doubles per part of the multi-stream read (a whole number of 64-byte lines) */
    size_t m = n / STREAMS / 8 * 8;
    for (int r = 0; r < REPS; r++) {
        double t = now();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const word *w = (const word *)a;
#pragma omp parallel for schedule(static) reduction(+ : s0, s1, s2, s3)
        for (size_t i = 0; i < n; i += 4) {
            s0 += w[i];
            s1 += w[i + 1];
            s2 += w[i + 2];
            s3 += w[i + 3];
        }
        t = now() - t;
        sink += (double)(s0 + s1 + s2 + s3);
        reads[r] = 8.0 * n / t;
        if (reads[r] > best_read) best_read = reads[r];

        /* the same bytes read as STREAMS sequences at once per thread: the iterations of `i`
           are split among the threads, and iteration i reads line i of each of the STREAMS
           equal parts of `a`, so each thread walks STREAMS far-apart sequences side by side */
        t = now();
        uint64_t acc[8] = {0};
#pragma omp parallel for schedule(static) reduction(+ : acc[:8])
        for (size_t i = 0; i < m; i += 8)
            for (size_t j = 0; j < STREAMS; j++)
                for (size_t k = 0; k < 8; k++) acc[k] += w[j * m + i + k]; /* one vector add */
        t = now() - t;
        for (size_t k = 0; k < 8; k++) sink += (double)acc[k];
        streams[r] = 8.0 * m * STREAMS / t;
        if (streams[r] > best_streams) best_streams = streams[r];

        t = now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) c[i] = a[i];
        t = now() - t;
        if (16.0 * n / t > best_copy) best_copy = 16.0 * n / t;

        t = now();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0 * c[i];
        t = now() - t;
        if (24.0 * n / t > best_triad) best_triad = 24.0 * n / t;
    }
    printf("threads %d\narray_mib %zu\n", omp_get_max_threads(), mib);
    printf("read_gbs %.3f\ncopy_gbs %.3f\ntriad_gbs %.3f\n", best_read / 1e9, best_copy / 1e9,
           best_triad / 1e9);
    /* median of the read rates (REPS is odd): insertion sort */
    for (int i = 1; i < REPS; i++)
        for (int j = i; j > 0 && reads[j - 1] > reads[j]; j--) {
            double x = reads[j];
            reads[j] = reads[j - 1];
            reads[j - 1] = x;
        }
    printf("read_median_gbs %.3f\n", reads[REPS / 2] / 1e9);
    for (int i = 1; i < REPS; i++)
        for (int j = i; j > 0 && streams[j - 1] > streams[j]; j--) {
            double x = streams[j];
            streams[j] = streams[j - 1];
            streams[j - 1] = x;
        }
    printf("read_streams_gbs %.3f\nread_streams_median_gbs %.3f\n", best_streams / 1e9,
           streams[REPS / 2] / 1e9);
    if (sink == 42.0) printf("%f\n", sink); /* keep the read loop */
    return 0;
}
