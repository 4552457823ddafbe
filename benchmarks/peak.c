/* Machine peaks for benchmarks/speed.py: multiply-adds per second of the AVX2 instruction
 * sequences a matmul kernel is built from, on T threads (one per core).
 *
 *   fma       vfmadd231ps                     8 fp32 FMA per instruction
 *   pmaddwd   vpmaddwd + vpaddd               16 exact int16 x int16 (so int8 x int8) MAC
 *   pmaddubsw vpmaddubsw + vpmaddwd + vpaddd  32 uint8 x int8 MAC, pair sums saturating at
 *                                             int16 (exact only for restricted ranges)
 *
 * Each loop keeps 10-12 independent accumulators (enough to hide the latencies) and is
 * written in assembly so the compiler cannot fold it away.
 * Build: cc -O2 -pthread peak.c -o peak;  run: ./peak THREADS SECONDS_PER_KIND
 * Output: one JSON object, MAC/s summed over the threads. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define REP10(x) x x x x x x x x x x

static void fma_loop(long n) {
  __asm__ volatile(
      "vxorps %%ymm0,%%ymm0,%%ymm0\n vxorps %%ymm1,%%ymm1,%%ymm1\n vxorps %%ymm2,%%ymm2,%%ymm2\n"
      "vxorps %%ymm3,%%ymm3,%%ymm3\n vxorps %%ymm4,%%ymm4,%%ymm4\n vxorps %%ymm5,%%ymm5,%%ymm5\n"
      "vxorps %%ymm6,%%ymm6,%%ymm6\n vxorps %%ymm7,%%ymm7,%%ymm7\n vxorps %%ymm8,%%ymm8,%%ymm8\n"
      "vxorps %%ymm9,%%ymm9,%%ymm9\n vxorps %%ymm10,%%ymm10,%%ymm10\n vxorps %%ymm11,%%ymm11,%%ymm11\n"
      "vxorps %%ymm12,%%ymm12,%%ymm12\n vxorps %%ymm13,%%ymm13,%%ymm13\n"
      "1:\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm0\n vfmadd231ps %%ymm12,%%ymm13,%%ymm1\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm2\n vfmadd231ps %%ymm12,%%ymm13,%%ymm3\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm4\n vfmadd231ps %%ymm12,%%ymm13,%%ymm5\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm6\n vfmadd231ps %%ymm12,%%ymm13,%%ymm7\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm8\n vfmadd231ps %%ymm12,%%ymm13,%%ymm9\n"
      "vfmadd231ps %%ymm12,%%ymm13,%%ymm10\n vfmadd231ps %%ymm12,%%ymm13,%%ymm11\n"
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "cc");
}

#define PMADDWD(acc, t) "vpmaddwd %%ymm12,%%ymm13,%%ymm" #t "\n vpaddd %%ymm" #t ",%%ymm" #acc ",%%ymm" #acc "\n"
static void pmaddwd_loop(long n) {
  __asm__ volatile(
      "vpxor %%ymm12,%%ymm12,%%ymm12\n vpxor %%ymm13,%%ymm13,%%ymm13\n"
      "1:\n" PMADDWD(0, 14) PMADDWD(1, 15) PMADDWD(2, 14) PMADDWD(3, 15) PMADDWD(4, 14) PMADDWD(5, 15)
      PMADDWD(6, 14) PMADDWD(7, 15) PMADDWD(8, 14) PMADDWD(9, 15) PMADDWD(10, 14) PMADDWD(11, 15)
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}

#define PMADDUBSW(acc, t) "vpmaddubsw %%ymm11,%%ymm10,%%ymm" #t "\n vpmaddwd %%ymm12,%%ymm" #t ",%%ymm" #t "\n" \
                          "vpaddd %%ymm" #t ",%%ymm" #acc ",%%ymm" #acc "\n"
static void pmaddubsw_loop(long n) {
  __asm__ volatile(
      "vpxor %%ymm10,%%ymm10,%%ymm10\n vpxor %%ymm11,%%ymm11,%%ymm11\n vpxor %%ymm12,%%ymm12,%%ymm12\n"
      "1:\n" PMADDUBSW(0, 13) PMADDUBSW(1, 14) PMADDUBSW(2, 15) PMADDUBSW(3, 13) PMADDUBSW(4, 14)
      PMADDUBSW(5, 15) PMADDUBSW(6, 13) PMADDUBSW(7, 14) PMADDUBSW(8, 15) PMADDUBSW(9, 13)
      "dec %0\n jnz 1b\n"
      : "+r"(n)::"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
}

struct kind { const char *name; void (*loop)(long); double macs_per_iter; };
static const struct kind KINDS[] = {
    {"fp32_fma_per_s", fma_loop, 12 * 8}, {"int8_mac_pmaddwd_per_s", pmaddwd_loop, 12 * 16},
    {"int8_mac_pmaddubsw_per_s", pmaddubsw_loop, 10 * 32}};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

struct job { const struct kind *k; long n; double seconds; };
static void *worker(void *arg) {
  struct job *j = arg;
  double t0 = now();
  j->k->loop(j->n);
  j->seconds = now() - t0;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  double want = argc > 2 ? atof(argv[2]) : 0.5;
  printf("{");
  for (int i = 0; i < 3; i++) {
    const struct kind *k = &KINDS[i];
    long n = 1000000;
    double t0 = now();
    k->loop(n);
    n = (long)(n * want / (now() - t0)) + 1;  /* about `want` seconds per run */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {  /* best of three: the machine is shared */
      pthread_t tid[64];
      struct job jobs[64];
      for (int t = 0; t < threads && t < 64; t++) {
        jobs[t] = (struct job){k, n, 0};
        pthread_create(&tid[t], NULL, worker, &jobs[t]);
      }
      double rate = 0;
      for (int t = 0; t < threads && t < 64; t++) {
        pthread_join(tid[t], NULL);
        rate += n * k->macs_per_iter / jobs[t].seconds;
      }
      if (rate > best) best = rate;
    }
    printf("%s\"%s\": %.4g", i ? ", " : "", k->name, best);
  }
  printf("}\n");
  return 0;
}
