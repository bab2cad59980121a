// The BPE merge loop, compiled: the same algorithm and the same merges as lm/bpe.py's
// `merge_pretokens_python` (the fallback and the executable description of this file).
//
//   merge(words: list[bytes], freqs: list[int], vocab: list[bytes], n_merges: int,
//         progress: callable(int) | None) -> list[tuple[int, int]]
//
// `words` are the distinct pretokens (UTF-8 bytes, each byte is its own initial token id),
// `vocab` the initial tokens' bytes (256 bytes + special tokens), and the result the merged
// pairs of token ids, in order; merge k creates id len(vocab) + k.
//
// Pair counts are kept incrementally; a max-heap with lazy invalidation picks the next pair
// (highest count, then the lexicographically greatest pair of byte strings: the CS336 tie
// break, compared as unsigned bytes like Python's `bytes`); a merge touches only the words
// that hold the pair, found through a per-pair list of word indices (duplicates and stale
// entries are skipped when read, so the lists are append-only).

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cstdint>
#include <queue>
#include <string>
#include <unordered_map>
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

struct Trainer {
  std::vector<std::string> vocab;
  std::vector<std::vector<uint32_t>> words;
  std::vector<int64_t> freqs;
  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::vector<uint32_t>> pair_words;
  std::vector<uint64_t> last_seen;  // per word: the merge that last visited it (dedupes pair_words lists)

  // a < b in heap order: b is popped first when it has the higher count, or the same count and greater bytes
  bool lower(const HeapItem& a, const HeapItem& b) const {
    if (a.count != b.count) return a.count < b.count;
    int c = vocab[left(a.pair)].compare(vocab[left(b.pair)]);
    if (c != 0) return c < 0;
    return vocab[right(a.pair)].compare(vocab[right(b.pair)]) < 0;
  }

  void count_word(uint32_t w, int64_t sign) {
    const auto& word = words[w];
    for (size_t i = 0; i + 1 < word.size(); ++i) pair_counts[make_pair_key(word[i], word[i + 1])] += sign * freqs[w];
  }

  std::vector<Pair> run(size_t n_merges, PyObject* progress) {
    auto cmp = [this](const HeapItem& a, const HeapItem& b) { return lower(a, b); };
    std::priority_queue<HeapItem, std::vector<HeapItem>, decltype(cmp)> heap(cmp);
    last_seen.assign(words.size(), UINT64_MAX);
    for (uint32_t w = 0; w < words.size(); ++w) {
      count_word(w, 1);
      const auto& word = words[w];
      for (size_t i = 0; i + 1 < word.size(); ++i) pair_words[make_pair_key(word[i], word[i + 1])].push_back(w);
    }
    for (const auto& [pair, count] : pair_counts) heap.push({count, pair});

    std::vector<Pair> merges;
    std::vector<Pair> changed, old_pairs, new_pairs;
    std::vector<uint32_t> merged;
    while (merges.size() < n_merges && !heap.empty()) {
      HeapItem top = heap.top();
      heap.pop();
      auto it = pair_counts.find(top.pair);
      if (it == pair_counts.end() || it->second != top.count || top.count <= 0) continue;  // stale
      const uint32_t a = left(top.pair), b = right(top.pair);
      const uint32_t new_id = static_cast<uint32_t>(vocab.size());
      vocab.push_back(vocab[a] + vocab[b]);
      const uint64_t merge_index = merges.size();
      merges.push_back(top.pair);
      changed.clear();

      std::vector<uint32_t> holders;
      auto pw = pair_words.find(top.pair);
      if (pw != pair_words.end()) holders.swap(pw->second), pair_words.erase(pw);
      for (uint32_t w : holders) {
        if (last_seen[w] == merge_index) continue;  // listed twice
        last_seen[w] = merge_index;
        auto& word = words[w];
        bool holds = false;
        for (size_t i = 0; i + 1 < word.size(); ++i)
          if (word[i] == a && word[i + 1] == b) { holds = true; break; }
        if (!holds) continue;  // a stale entry: an earlier merge changed this word
        merged.clear();
        for (size_t i = 0; i < word.size();) {
          if (i + 1 < word.size() && word[i] == a && word[i + 1] == b) { merged.push_back(new_id); i += 2; }
          else { merged.push_back(word[i]); i += 1; }
        }
        // only the pairs whose count in this word changed are touched: the word's pairs before and
        // after, sorted, diffed (words are a few tokens long; most of their pairs are unaffected)
        const int64_t freq = freqs[w];
        old_pairs.clear();
        new_pairs.clear();
        for (size_t i = 0; i + 1 < word.size(); ++i) old_pairs.push_back(make_pair_key(word[i], word[i + 1]));
        for (size_t i = 0; i + 1 < merged.size(); ++i) {
          Pair p = make_pair_key(merged[i], merged[i + 1]);
          new_pairs.push_back(p);
          if (merged[i] == new_id || merged[i + 1] == new_id) pair_words[p].push_back(w);  // pairs new to this word
        }
        std::sort(old_pairs.begin(), old_pairs.end());
        std::sort(new_pairs.begin(), new_pairs.end());
        size_t i = 0, j = 0;
        while (i < old_pairs.size() || j < new_pairs.size()) {
          Pair p = (j == new_pairs.size() || (i < old_pairs.size() && old_pairs[i] < new_pairs[j])) ? old_pairs[i] : new_pairs[j];
          int64_t delta = 0;
          for (; i < old_pairs.size() && old_pairs[i] == p; ++i) delta -= 1;
          for (; j < new_pairs.size() && new_pairs[j] == p; ++j) delta += 1;
          if (delta != 0) {
            pair_counts[p] += delta * freq;
            changed.push_back(p);
          }
        }
        word.swap(merged);
      }
      pair_counts.erase(top.pair);
      std::sort(changed.begin(), changed.end());
      changed.erase(std::unique(changed.begin(), changed.end()), changed.end());
      for (Pair p : changed) {
        if (p == top.pair) continue;
        auto c = pair_counts.find(p);
        if (c == pair_counts.end()) continue;
        if (c->second > 0) heap.push({c->second, p});
        else pair_counts.erase(c);
      }
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
  PyObject *words_obj, *freqs_obj, *vocab_obj, *progress;
  Py_ssize_t n_merges;
  if (!PyArg_ParseTuple(args, "OOOnO", &words_obj, &freqs_obj, &vocab_obj, &n_merges, &progress)) return nullptr;
  Trainer t;
  std::vector<std::string> raw_words;
  if (!read_bytes_list(vocab_obj, t.vocab, "vocab must be a list of bytes")) return nullptr;
  if (!read_bytes_list(words_obj, raw_words, "words must be a list of bytes")) return nullptr;
  PyObject* freqs = PySequence_Fast(freqs_obj, "freqs must be a list of ints");
  if (freqs == nullptr) return nullptr;
  if (PySequence_Fast_GET_SIZE(freqs) != static_cast<Py_ssize_t>(raw_words.size())) {
    Py_DECREF(freqs);
    PyErr_SetString(PyExc_ValueError, "words and freqs differ in length");
    return nullptr;
  }
  t.words.reserve(raw_words.size());
  t.freqs.reserve(raw_words.size());
  for (size_t i = 0; i < raw_words.size(); ++i) {
    t.words.emplace_back(raw_words[i].begin(), raw_words[i].end());
    for (auto& id : t.words.back()) id &= 0xffu;  // bytes as unsigned ids 0..255
    long long f = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(freqs, i));
    if (f == -1 && PyErr_Occurred()) { Py_DECREF(freqs); return nullptr; }
    t.freqs.push_back(f);
  }
  Py_DECREF(freqs);
  raw_words.clear();
  raw_words.shrink_to_fit();
  std::vector<Pair> merges = t.run(static_cast<size_t>(n_merges < 0 ? 0 : n_merges), progress);
  if (PyErr_Occurred()) return nullptr;
  PyObject* out = PyList_New(static_cast<Py_ssize_t>(merges.size()));
  if (out == nullptr) return nullptr;
  for (size_t i = 0; i < merges.size(); ++i)
    PyList_SET_ITEM(out, i, Py_BuildValue("(II)", left(merges[i]), right(merges[i])));
  return out;
}

PyMethodDef methods[] = {
    {"merge", merge, METH_VARARGS, "merge(words, freqs, vocab, n_merges, progress) -> [(left id, right id), ...]"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bpe_core", "lmforge's compiled BPE merge loop.", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__bpe_core() { return PyModule_Create(&module); }
