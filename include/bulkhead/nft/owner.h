// One owner for every C handle of libnftnl (objects, expressions, udata
// buffers): a std::unique_ptr whose deleter is the library's own free
// function, named once per type where it is used.
#pragma once

#include <memory>

namespace bulkhead::nft {

template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

// Owner<nftnl_rule, nftnl_rule_free> r(nftnl_rule_alloc());
template <typename T, auto Free>
using Owner = std::unique_ptr<T, FreeWith<Free>>;

}  // namespace bulkhead::nft
