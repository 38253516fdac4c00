// glibc's allocator, set up for a daemon whose resident memory an operator
// budgets. Called once, first thing in main, before any thread starts.
#pragma once

namespace bulkhead::common {

// At most `arenas` malloc arenas: glibc otherwise gives each thread that
// allocates an arena of its own (up to 8 per CPU) and keeps what was freed
// there, so gRPC's worker threads would each hold tens of MiB of past
// messages. And fixed mmap and trim thresholds: glibc otherwise raises
// them (up to 32 MiB) each time a large block is freed, and then keeps
// that much freed memory mapped.
void boundAllocator(int arenas);

}  // namespace bulkhead::common
