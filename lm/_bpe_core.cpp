// The BPE merge loop, compiled: the same algorithm and the same merges as lm/bpe.py's
// `merge_pretokens_python` (the fallback and the executable description of this file).
//
//   merge(counts: dict[bytes, int], vocab: list[bytes], n_merges: int,
//         progress: callable(int) | None, consume: bool) -> list[tuple[int, int]]
//
// `counts` are the distinct pretokens (UTF-8 bytes, each byte is its own initial token id) and
// their counts (emptied when `consume`: the caller hands them over),
// `vocab` the initial tokens' bytes (256 bytes + special tokens), and the result the merged
// pairs of token ids, in order; merge k creates id len(vocab) + k.
//
// Pair counts are kept incrementally; a max-heap with lazy invalidation picks the next pair
// (highest count, then the lexicographically greatest pair of byte strings: the CS336 tie
// break, compared as unsigned bytes like Python's `bytes`); a merge touches only the words
// that hold the pair, found through a per-pair list of word indices (duplicates and stale
// entries are skipped when read, so the lists are append-only). Words, pair counts and the
// lists live in flat arrays (no node-based maps): half the memory, fewer cache misses.

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using Pair = uint64_t;  // (left id << 32) | right id

inline Pair make_pair_key(uint32_t a, uint32_t b) { return (static_cast<uint64_t>(a) << 32) | b; }
inline uint32_t left(Pair p) { return static_cast<uint32_t>(p >> 32); }
inline uint32_t right(Pair p) { return static_cast<uint32_t>(p & 0xffffffffu); }

struct HeapItem {
  int64_t count;
  Pair pair;
};

// Pair -> (count, head of its list of word indices): open addressing with linear probing.
// Flat arrays instead of node-based maps: a merge's lookups stay in a few cache lines, and the
// table costs 20 bytes a slot instead of ~80 a node. Dead pairs are dropped when the table grows.
struct PairTable {
  static constexpr Pair EMPTY = ~Pair{0};  // ids are < 2^32 - 1, so no real pair is all ones
  static constexpr uint32_t NONE = ~uint32_t{0};
  std::vector<Pair> keys;
  std::vector<int64_t> counts;
  std::vector<uint32_t> heads;  // the newest block of the pair's word list in the arena (NONE: empty)
  size_t used = 0;

  explicit PairTable(size_t expected) {
    size_t cap = 1024;
    while (cap * 7 < expected * 10) cap <<= 1;
    keys.assign(cap, EMPTY);
    counts.assign(cap, 0);
    heads.assign(cap, NONE);
  }

  static inline size_t hash(Pair k) {  // murmur3's finalizer: pairs of small ids spread over the table
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }

  // slot of `key`, inserted (count 0, empty list) if absent; slots move when the table grows
  size_t slot(Pair key) {
    if ((used + 1) * 10 > keys.size() * 7) grow();  // load 0.7: linear probing is still short there
    size_t mask = keys.size() - 1, i = hash(key) & mask;
    while (keys[i] != key) {
      if (keys[i] == EMPTY) {
        keys[i] = key;
        ++used;
        return i;
      }
      i = (i + 1) & mask;
    }
    return i;
  }

  // slot of `key`, or NONE-sized sentinel (keys.size()) when absent
  size_t find(Pair key) const {
    size_t mask = keys.size() - 1, i = hash(key) & mask;
    while (keys[i] != key) {
      if (keys[i] == EMPTY) return keys.size();
      i = (i + 1) & mask;
    }
    return i;
  }

  // rehash into a table sized for the live pairs: pairs with no count and no list (merged, or
  // gone from every word) are dropped here, so the table follows the live pairs, not all ever seen
  void grow() {
    size_t live = 0;
    for (size_t j = 0; j < keys.size(); ++j) live += keys[j] != EMPTY && (counts[j] != 0 || heads[j] != NONE);
    size_t cap = 1024;
    while (cap * 7 < live * 20) cap <<= 1;  // room to double the live pairs before the next sweep
    std::vector<Pair> old_keys(cap, EMPTY);
    std::vector<int64_t> old_counts(cap, 0);
    std::vector<uint32_t> old_heads(cap, NONE);
    old_keys.swap(keys);
    old_counts.swap(counts);
    old_heads.swap(heads);
    used = live;
    size_t mask = keys.size() - 1;
    for (size_t j = 0; j < old_keys.size(); ++j) {
      if (old_keys[j] == EMPTY || (old_counts[j] == 0 && old_heads[j] == NONE)) continue;
      size_t i = hash(old_keys[j]) & mask;
      while (keys[i] != EMPTY) i = (i + 1) & mask;
      keys[i] = old_keys[j];
      counts[i] = old_counts[j];
      heads[i] = old_heads[j];
    }
  }
};

struct Trainer {
  std::vector<std::string> vocab;
  // the words, flat: word w is tokens[words[w].start ..][:words[w].length], shortened in place by
  // merges; a word's start, length and count share one cache line (a merge visits words at random)
  struct Word {
    uint64_t start;
    int64_t freq;
    uint32_t length;
  };
  std::vector<uint32_t> tokens;
  std::vector<Word> words;
  PairTable pairs{0};
  // the pairs' word lists, append-only (a word may be listed twice, or after a merge removed the
  // pair from it: both are skipped when a list is read)
  // blocks in one arena: [next block, used, capacity, word...]; each block twice its predecessor's
  // capacity up to 256, so a rare pair costs 5 slots and a common pair's list is read in long runs
  std::vector<uint32_t> arena;
  static constexpr uint32_t HEADER = 3, MAX_BLOCK = 256, CLASSES = 8;  // capacities 2, 4, ..., 256
  std::vector<uint32_t> free_blocks[CLASSES];  // blocks of dead lists, reused by capacity: the arena stays near the live lists

  static uint32_t capacity_class(uint32_t cap) { return static_cast<uint32_t>(__builtin_ctz(cap)) - 1; }

  // the list's blocks go to the free lists (the pair was merged, or no word holds it any more)
  void release(uint32_t head) {
    for (uint32_t blk = head; blk != PairTable::NONE;) {
      uint32_t next = arena[blk];
      free_blocks[capacity_class(arena[blk + 2])].push_back(blk);
      blk = next;
    }
  }

  // a < b in heap order: b is popped first when it has the higher count, or the same count and greater bytes
  bool lower(const HeapItem& a, const HeapItem& b) const {
    if (a.count != b.count) return a.count < b.count;
    int c = vocab[left(a.pair)].compare(vocab[left(b.pair)]);
    if (c != 0) return c < 0;
    return vocab[right(a.pair)].compare(vocab[right(b.pair)]) < 0;
  }

  void list_word(size_t slot, uint32_t w) {
    uint32_t head = pairs.heads[slot];
    if (head == PairTable::NONE || arena[head + 1] == arena[head + 2]) {
      uint32_t cap = head == PairTable::NONE ? 2 : std::min(arena[head + 2] * 2, MAX_BLOCK);
      auto& reusable = free_blocks[capacity_class(cap)];
      uint32_t block;
      if (!reusable.empty()) {
        block = reusable.back();
        reusable.pop_back();
      } else {
        block = static_cast<uint32_t>(arena.size());
        arena.resize(arena.size() + HEADER + cap);
      }
      arena[block] = head;
      arena[block + 1] = 0;
      arena[block + 2] = cap;
      pairs.heads[slot] = head = block;
    }
    arena[head + HEADER + arena[head + 1]++] = w;
  }

  std::vector<Pair> run(size_t n_merges, PyObject* progress) {
    auto cmp = [this](const HeapItem& a, const HeapItem& b) { return lower(a, b); };
    // a max-heap in a vector (std::push_heap/pop_heap), so stale entries can be swept out: every
    // count change pushes a new entry, and over a long run the old ones would outgrow the table
    std::vector<HeapItem> heap;
    auto rebuild_heap = [&]() {
      heap.clear();
      for (size_t s = 0; s < pairs.keys.size(); ++s)
        if (pairs.keys[s] != PairTable::EMPTY && pairs.counts[s] > 0) heap.push_back({pairs.counts[s], pairs.keys[s]});
      std::make_heap(heap.begin(), heap.end(), cmp);
    };
    pairs = PairTable(1 << 16);  // grows as merges make new pairs (the 256 bytes make ~10^4)
    arena.reserve(tokens.size() + tokens.size() / 4);  // the initial lists: ~one entry per token
    for (uint32_t w = 0; w < words.size(); ++w) {
      const uint32_t* word = tokens.data() + words[w].start;
      for (uint32_t i = 0; i + 1 < words[w].length; ++i) {
        size_t s = pairs.slot(make_pair_key(word[i], word[i + 1]));
        pairs.counts[s] += words[w].freq;
        list_word(s, w);
      }
    }
    rebuild_heap();

    std::vector<Pair> merges;
    std::vector<Pair> changed, old_pairs, new_pairs;
    std::vector<uint32_t> holders;
    while (merges.size() < n_merges && !heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), cmp);
      HeapItem top = heap.back();
      heap.pop_back();
      size_t top_slot = pairs.find(top.pair);
      if (top_slot == pairs.keys.size() || pairs.counts[top_slot] != top.count || top.count <= 0) continue;  // stale
      const uint32_t a = left(top.pair), b = right(top.pair);
      const uint32_t new_id = static_cast<uint32_t>(vocab.size());
      vocab.push_back(vocab[a] + vocab[b]);
      merges.push_back(top.pair);
      changed.clear();
      holders.clear();
      for (uint32_t blk = pairs.heads[top_slot]; blk != PairTable::NONE; blk = arena[blk])
        holders.insert(holders.end(), arena.begin() + blk + HEADER, arena.begin() + blk + HEADER + arena[blk + 1]);
      release(pairs.heads[top_slot]);
      pairs.heads[top_slot] = PairTable::NONE;
      pairs.counts[top_slot] = 0;
      // in word order: each word once, and the words' memory read front to back (a merge of a
      // common pair visits ~10^5 words; their cache misses, not the arithmetic, are its cost)
      std::sort(holders.begin(), holders.end());
      holders.erase(std::unique(holders.begin(), holders.end()), holders.end());

      for (size_t k = 0; k < holders.size(); ++k) {
        if (k + 16 < holders.size()) __builtin_prefetch(&words[holders[k + 16]]);
        if (k + 8 < holders.size()) __builtin_prefetch(tokens.data() + words[holders[k + 8]].start);
        const uint32_t w = holders[k];
        Word& meta = words[w];
        uint32_t* word = tokens.data() + meta.start;
        const uint32_t n = meta.length;
        bool holds = false;
        for (uint32_t i = 0; i + 1 < n; ++i)
          if (word[i] == a && word[i + 1] == b) { holds = true; break; }
        if (!holds) continue;  // a stale entry: an earlier merge changed this word
        // only the pairs whose count in this word changed are touched: the word's pairs before and
        // after, sorted, diffed (words are a few tokens long; most of their pairs are unaffected)
        old_pairs.clear();
        for (uint32_t i = 0; i + 1 < n; ++i) old_pairs.push_back(make_pair_key(word[i], word[i + 1]));
        uint32_t m = 0;  // merged in place: the write position never passes the read position
        for (uint32_t i = 0; i < n;) {
          if (i + 1 < n && word[i] == a && word[i + 1] == b) { word[m++] = new_id; i += 2; }
          else { word[m++] = word[i]; i += 1; }
        }
        meta.length = m;
        new_pairs.clear();
        for (uint32_t i = 0; i + 1 < m; ++i) {
          Pair p = make_pair_key(word[i], word[i + 1]);
          new_pairs.push_back(p);
          if (word[i] == new_id || word[i + 1] == new_id) list_word(pairs.slot(p), w);  // pairs new to this word
        }
        std::sort(old_pairs.begin(), old_pairs.end());
        std::sort(new_pairs.begin(), new_pairs.end());
        const int64_t freq = meta.freq;
        size_t i = 0, j = 0;
        while (i < old_pairs.size() || j < new_pairs.size()) {
          Pair p = (j == new_pairs.size() || (i < old_pairs.size() && old_pairs[i] < new_pairs[j])) ? old_pairs[i] : new_pairs[j];
          int64_t delta = 0;
          for (; i < old_pairs.size() && old_pairs[i] == p; ++i) delta -= 1;
          for (; j < new_pairs.size() && new_pairs[j] == p; ++j) delta += 1;
          if (delta != 0 && p != top.pair) {
            size_t sl = pairs.slot(p);
            pairs.counts[sl] += delta * freq;
            if (pairs.counts[sl] == 0) {  // no word holds it: its list is all stale
              release(pairs.heads[sl]);
              pairs.heads[sl] = PairTable::NONE;
            }
            changed.push_back(p);
          }
        }
      }
      std::sort(changed.begin(), changed.end());
      changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
      for (Pair p : changed) {
        int64_t c = pairs.counts[pairs.find(p)];
        if (c > 0) {
          heap.push_back({c, p});
          std::push_heap(heap.begin(), heap.end(), cmp);
        }
      }
      if (heap.size() > 2 * pairs.used + (1 << 16)) rebuild_heap();  // mostly stale: sweep
      if (progress != Py_None && (merges.size() % 256 == 0 || merges.size() == n_merges)) {
        PyObject* r = PyObject_CallFunction(progress, "n", static_cast<Py_ssize_t>(merges.size()));
        if (r == nullptr) return {};  // the callback raised (e.g. KeyboardInterrupt): the error propagates
        Py_DECREF(r);
      }
    }
    return merges;
  }
};

bool read_bytes_list(PyObject* list, std::vector<std::string>& out, const char* what) {
  PyObject* seq = PySequence_Fast(list, what);
  if (seq == nullptr) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  out.reserve(n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    char* data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(item, &data, &len) < 0) { Py_DECREF(seq); return false; }
    out.emplace_back(data, len);
  }
  Py_DECREF(seq);
  return true;
}

PyObject* merge(PyObject*, PyObject* args) {
  PyObject *counts, *vocab_obj, *progress;
  Py_ssize_t n_merges;
  int consume;
  if (!PyArg_ParseTuple(args, "O!OnOp", &PyDict_Type, &counts, &vocab_obj, &n_merges, &progress, &consume))
    return nullptr;
  Trainer t;
  if (!read_bytes_list(vocab_obj, t.vocab, "vocab must be a list of bytes")) return nullptr;
  t.words.reserve(static_cast<size_t>(PyDict_Size(counts)));
  Py_ssize_t pos = 0;
  PyObject *word, *freq;
  while (PyDict_Next(counts, &pos, &word, &freq)) {
    char* data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(word, &data, &len) < 0) return nullptr;
    long long f = PyLong_AsLongLong(freq);
    if (f == -1 && PyErr_Occurred()) return nullptr;
    t.words.push_back({t.tokens.size(), f, static_cast<uint32_t>(len)});
    for (Py_ssize_t i = 0; i < len; ++i) t.tokens.push_back(static_cast<unsigned char>(data[i]));  // ids 0..255
  }
  // the caller's counts are now ours: emptied so the merges reuse their memory instead of adding to it
  if (consume) PyDict_Clear(counts);
  std::vector<Pair> merges = t.run(static_cast<size_t>(n_merges < 0 ? 0 : n_merges), progress);
  if (PyErr_Occurred()) return nullptr;
  PyObject* out = PyList_New(static_cast<Py_ssize_t>(merges.size()));
  if (out == nullptr) return nullptr;
  for (size_t i = 0; i < merges.size(); ++i)
    PyList_SET_ITEM(out, i, Py_BuildValue("(II)", left(merges[i]), right(merges[i])));
  return out;
}

PyMethodDef methods[] = {
    {"merge", merge, METH_VARARGS, "merge(counts, vocab, n_merges, progress, consume) -> [(left id, right id), ...]"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bpe_core", "lmforge's compiled BPE merge loop.", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__bpe_core() { return PyModule_Create(&module); }
