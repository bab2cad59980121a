// Word n-gram shingle hashes of a normalised document, compiled (filters/shingle_hash.py).
//
// `shingle_hashes(text: bytes, n: int) -> bytes`: the XXH64 (seed 0) of every word n-gram of
// `text` (single-space separated words, as `filters.dedup.normalize` leaves them), packed as
// little-endian uint64 in document order; the whole text is one shingle when it has n words
// or fewer. The n-gram "w_i ... w_{i+n-1}" is a contiguous slice of the text, so no string is
// built: one call per document instead of one Python call (and one bytes object) per shingle.
// XXH64 is written from its specification (github.com/Cyan4973/xxHash, doc/xxhash_spec.md);
// tests compare it with the `xxhash` package on real text.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr uint64_t P1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t P3 = 0x165667B19E3779F9ULL;
constexpr uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t P5 = 0x27D4EB2F165667C5ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

inline uint64_t read64(const unsigned char* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // little-endian hosts (x86-64, aarch64): the spec's byte order
    return v;
}

inline uint32_t read32(const unsigned char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

inline uint64_t round64(uint64_t acc, uint64_t lane) { return rotl(acc + lane * P2, 31) * P1; }

inline uint64_t merge_round(uint64_t acc, uint64_t v) { return (acc ^ round64(0, v)) * P1 + P4; }

uint64_t xxh64(const unsigned char* p, size_t len, uint64_t seed) {
    const unsigned char* end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        const unsigned char* limit = end - 32;
        do {
            v1 = round64(v1, read64(p));
            v2 = round64(v2, read64(p + 8));
            v3 = round64(v3, read64(p + 16));
            v4 = round64(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed + P5;
    }
    h += static_cast<uint64_t>(len);
    for (; p + 8 <= end; p += 8) h = rotl(h ^ round64(0, read64(p)), 27) * P1 + P4;
    if (p + 4 <= end) {
        h = rotl(h ^ (static_cast<uint64_t>(read32(p)) * P1), 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; ++p) h = rotl(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

// XXH64 of every word n-gram of `text` (words separated by exactly one space)
std::vector<uint64_t> hash_shingles(const unsigned char* text, size_t len, size_t ngram) {
    std::vector<size_t> starts{0}, ends;  // word i spans [starts[i], ends[i])
    for (size_t i = 0; i < len; ++i) {
        if (text[i] == ' ') {
            ends.push_back(i);
            starts.push_back(i + 1);
        }
    }
    ends.push_back(len);
    const size_t words = starts.size();
    std::vector<uint64_t> out;
    if (words <= ngram) {
        out.push_back(xxh64(text, len, 0));
        return out;
    }
    out.reserve(words - ngram + 1);
    for (size_t i = 0; i + ngram <= words; ++i) out.push_back(xxh64(text + starts[i], ends[i + ngram - 1] - starts[i], 0));
    return out;
}

PyObject* shingle_hashes(PyObject*, PyObject* args) {
    Py_buffer buf;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*n", &buf, &n)) return nullptr;
    if (n < 1) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "n must be >= 1");
        return nullptr;
    }
    std::vector<uint64_t> out;
    Py_BEGIN_ALLOW_THREADS
    out = hash_shingles(static_cast<const unsigned char*>(buf.buf), static_cast<size_t>(buf.len), static_cast<size_t>(n));
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(out.data()),
                                     static_cast<Py_ssize_t>(out.size() * sizeof(uint64_t)));
}

// `minhash(text, n, a, b) -> bytes`: the document's MinHash signature, uint32 per permutation:
// min over its shingles of a[p]·h + b[p] mod 2^32, h the low 32 bits of the shingle's XXH64
// (the same arithmetic as the numpy path in filters/partitioned_dedup.py; the inner loop over
// permutations vectorises).
PyObject* minhash(PyObject*, PyObject* args) {
    Py_buffer buf, abuf, bbuf;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*ny*y*", &buf, &n, &abuf, &bbuf)) return nullptr;
    const Py_ssize_t perms = abuf.len / 4;
    if (n < 1 || abuf.len != bbuf.len || abuf.len % 4 != 0) {
        PyBuffer_Release(&buf);
        PyBuffer_Release(&abuf);
        PyBuffer_Release(&bbuf);
        PyErr_SetString(PyExc_ValueError, "n must be >= 1 and a, b equal-length uint32 buffers");
        return nullptr;
    }
    std::vector<uint32_t> sig(static_cast<size_t>(perms), UINT32_MAX);
    Py_BEGIN_ALLOW_THREADS
    const auto* a = static_cast<const uint32_t*>(abuf.buf);
    const auto* b = static_cast<const uint32_t*>(bbuf.buf);
    uint32_t* s = sig.data();
    for (uint64_t h64 : hash_shingles(static_cast<const unsigned char*>(buf.buf), static_cast<size_t>(buf.len), static_cast<size_t>(n))) {
        const uint32_t h = static_cast<uint32_t>(h64);
        for (Py_ssize_t p = 0; p < perms; ++p) {
            const uint32_t v = a[p] * h + b[p];
            s[p] = v < s[p] ? v : s[p];
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    PyBuffer_Release(&abuf);
    PyBuffer_Release(&bbuf);
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(sig.data()), perms * 4);
}

PyMethodDef methods[] = {
    {"shingle_hashes", shingle_hashes, METH_VARARGS,
     "shingle_hashes(text: bytes, n: int) -> bytes: XXH64 of each word n-gram, packed little-endian uint64."},
    {"minhash", minhash, METH_VARARGS,
     "minhash(text: bytes, n: int, a: bytes, b: bytes) -> bytes: uint32 min over shingles of a*h + b mod 2^32 per permutation."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_shingle_hash", "Word n-gram XXH64 shingle hashes.", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__shingle_hash() { return PyModule_Create(&module); }
