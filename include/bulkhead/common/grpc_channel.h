// The channel of a short-lived client of the agent (the CLI, the hooks):
// one process, one or two calls, then exit. Header-only on purpose: the
// hooks and the CLI link gRPC statically and the tests link it as a shared
// library, and one program must never hold both, so this compiles into
// whichever gRPC its includer uses.
#pragma once

#include <grpcpp/grpcpp.h>

namespace bulkhead::common {

// Arguments that keep a one-shot call from starting what it does not use:
// no retry machinery (a failed call is reported, not repeated), a
// subchannel pool of its own (no global pool to share with anyone). Unix
// targets ("unix:/path") go through gRPC's unix resolver, never DNS, and
// skip the HTTP proxy mapper.
inline grpc::ChannelArguments agentChannelArguments(int maxMessageBytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(maxMessageBytes);
  args.SetMaxSendMessageSize(maxMessageBytes);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return args;
}

}  // namespace bulkhead::common
