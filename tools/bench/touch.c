/*
 * What first-touching fresh anonymous memory costs on this machine (docs/BENCHMARKS.md, third
 * session): maps 1 GiB three times, touches one byte per 4 KB page (with or without
 * MADV_HUGEPAGE), then memsets it, and prints both times.
 *   gcc -O2 -o touch tools/bench/touch.c && ./touch 1 && ./touch 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int c,char**v){size_t n=(size_t)1<<30;int huge=atoi(v[1]);
for(int r=0;r<3;r++){char*p=mmap(0,n,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
if(huge)madvise(p,n,MADV_HUGEPAGE);double t=now();for(size_t i=0;i<n;i+=4096)p[i]=1;double t1=now();memset(p,2,n);double t2=now();
printf("huge=%d touch %.3f s (%.1f GB/s), memset after %.3f s\n",huge,t1-t,n/(t1-t)/1e9,t2-t1);munmap(p,n);}}
