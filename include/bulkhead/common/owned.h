// Ownership of C library handles: `Owned<T, free>` is a std::unique_ptr that
// releases its T* with the library's own free function, once, whatever path
// leaves the scope. One template for every such handle:
//   Owned<addrinfo, freeaddrinfo>      Owned<SSL, SSL_free>
//   Owned<nftnl_rule, nftnl_rule_free> Owned<nftnl_udata_buf, nftnl_udata_buf_free>
#pragma once

#include <memory>

namespace bulkhead {

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* p) const {
    if (p != nullptr) Free(p);
  }
};

template <class T, auto Free>
using Owned = std::unique_ptr<T, FreeWith<Free>>;

}  // namespace bulkhead
