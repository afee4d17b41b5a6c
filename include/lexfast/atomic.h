/* Atomic helpers for the compiled core: the budget pool's compare-and-swap
 * and the process-wide handle counter. GCC/Clang builtins, with an MSVC
 * branch so the header is not what stops a Windows build. */
#ifndef LEXFAST_ATOMIC_H
#define LEXFAST_ATOMIC_H

#include <stdint.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static __inline uint64_t lexfast_load_u64(uint64_t *p) {
    return (uint64_t)_InterlockedOr64((volatile __int64 *)p, 0);
}
static __inline int lexfast_cas_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    __int64 prev = _InterlockedCompareExchange64((volatile __int64 *)p, (__int64)desired,
                                                 (__int64)*expected);
    if ((uint64_t)prev == *expected) return 1;
    *expected = (uint64_t)prev;
    return 0;
}
static __inline int64_t lexfast_fetch_add_i64(int64_t *p, int64_t v) {
    return (int64_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
}
static __inline uint64_t lexfast_fetch_add_u64(uint64_t *p, uint64_t v) {
    return (uint64_t)_InterlockedExchangeAdd64((volatile __int64 *)p, (__int64)v);
}
static __inline uint64_t lexfast_exchange_u64(uint64_t *p, uint64_t v) {
    return (uint64_t)_InterlockedExchange64((volatile __int64 *)p, (__int64)v);
}
#else
static inline uint64_t lexfast_load_u64(uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static inline int lexfast_cas_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}
static inline int64_t lexfast_fetch_add_i64(int64_t *p, int64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t lexfast_fetch_add_u64(uint64_t *p, uint64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t lexfast_exchange_u64(uint64_t *p, uint64_t v) {
    return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
}
#endif

/* Deduct `cost` from `*remaining` unless that would go below zero.
 * Returns 1 on success; 0 on refusal, with the value seen in `*seen`.
 * A refused call deducts nothing (the reference's accounting). */
static inline int lexfast_budget_take(uint64_t *remaining, uint64_t cost, uint64_t *seen) {
    uint64_t cur = lexfast_load_u64(remaining);
    for (;;) {
        if (cost > cur) {
            *seen = cur;
            return 0;
        }
        if (lexfast_cas_u64(remaining, &cur, cur - cost)) return 1;
        /* lost a race: `cur` now holds the fresh value; try again */
    }
}

#endif
