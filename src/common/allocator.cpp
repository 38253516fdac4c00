#include "bulkhead/common/allocator.h"

#include <malloc.h>

namespace bulkhead::common {

void boundAllocator(int arenas) {
  mallopt(M_ARENA_MAX, arenas);
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  mallopt(M_TRIM_THRESHOLD, 1 << 20);
}

}  // namespace bulkhead::common
