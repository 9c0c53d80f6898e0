// PJRT_Error and PJRT_Event: status helpers, the event state machine and their entry points.
#include <new>

#include "internal.h"

namespace xla_metal {

Status MakeError(PJRT_Error_Code code, std::string message) {
  Status error(new PJRT_Error);
  error->code = code;
  error->message = std::move(message);
  return error;
}

Status CopyError(const PJRT_Error* error) {
  if (error == nullptr) return Ok();
  return MakeError(error->code, error->message);
}

Status InvalidArgument(std::string message) {
  return MakeError(PJRT_Error_Code_INVALID_ARGUMENT, std::move(message));
}

Status Unimplemented(std::string message) {
  return MakeError(PJRT_Error_Code_UNIMPLEMENTED, std::move(message));
}

Status FailedPrecondition(std::string message) {
  return MakeError(PJRT_Error_Code_FAILED_PRECONDITION, std::move(message));
}

Status RequireNonNull(const void* pointer, const char* what) {
  if (pointer != nullptr) return Ok();
  return InvalidArgument(std::string(what) + " is NULL");
}

PJRT_Error* NewEntryError(const char* function, PJRT_Error_Code code,
                          const char* what) noexcept {
  PJRT_Error* error = new (std::nothrow) PJRT_Error;
  if (error == nullptr) return nullptr;  // nothing left to report with
  error->code = code;
  try {
    error->message = std::string(function) + ": " + what;
  } catch (...) {
    // Keep the code; an empty message is better than none at all.
  }
  return error;
}

// ---------------------------------------------------------------------------- EventState

std::shared_ptr<EventState> EventState::MakePending() { return std::make_shared<EventState>(); }

std::shared_ptr<EventState> EventState::MakeReady(Status error) {
  std::shared_ptr<EventState> state = MakePending();
  state->Complete(std::move(error));
  return state;
}

void EventState::Complete(Status error) {
  std::vector<Callback> callbacks;
  std::vector<Status> callback_errors;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ready_) return;
    ready_ = true;
    error_ = std::move(error);
    waiter_ = nullptr;
    callbacks.swap(callbacks_);
    for (size_t i = 0; i < callbacks.size(); ++i) {
      callback_errors.push_back(CopyError(error_.get()));
    }
    ready_condition_.notify_all();
  }
  // Outside the lock: a callback may destroy the PJRT_Event it was registered on.
  for (size_t i = 0; i < callbacks.size(); ++i) {
    callbacks[i].function(callback_errors[i].release(), callbacks[i].user_arg);
  }
}

bool EventState::IsReady() {
  std::lock_guard<std::mutex> lock(mutex_);
  return ready_;
}

void EventState::SetWaiter(std::function<void()> waiter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!ready_) waiter_ = std::move(waiter);
}

void EventState::RunWaiter() {
  std::function<void()> waiter;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ready_ || !waiter_) return;
    waiter.swap(waiter_);
  }
  waiter();  // outside the lock: it completes this event
}

Status EventState::Await() {
  RunWaiter();
  std::unique_lock<std::mutex> lock(mutex_);
  ready_condition_.wait(lock, [this] { return ready_; });
  return CopyError(error_.get());
}

Status EventState::Error() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!ready_) return FailedPrecondition("PJRT_Event_Error: the event is not ready yet");
  return CopyError(error_.get());
}

void EventState::OnReady(PJRT_Event_OnReadyCallback callback, void* user_arg) {
  RunWaiter();
  Status error;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ready_) {
      callbacks_.push_back({callback, user_arg});
      return;
    }
    error = CopyError(error_.get());
  }
  callback(error.release(), user_arg);
}

PJRT_Event* NewEvent(std::shared_ptr<EventState> state) {
  return new PJRT_Event{std::move(state)};
}

namespace {

// ---------------------------------------------------------------------------- Error entry points

// These two return void, so they cannot report a bad argument; they ignore it instead.
void PJRT_Error_Destroy(PJRT_Error_Destroy_Args* args) {
  if (args == nullptr || !XM_HAS_FIELD(*args, error)) return;
  delete args->error;
}

void PJRT_Error_Message(PJRT_Error_Message_Args* args) {
  if (args == nullptr || !XM_HAS_FIELD(*args, message_size) || args->error == nullptr) return;
  args->message = args->error->message.data();
  args->message_size = args->error->message.size();
}

XM_ENTRY(PJRT_Error_GetCode, code) {
  XM_RETURN_IF_ERROR(RequireNonNull(args.error, "error"));
  args.code = args.error->code;
  return Ok();
}

// ---------------------------------------------------------------------------- Event entry points

Status RequireEvent(const PJRT_Event* event) {
  XM_RETURN_IF_ERROR(RequireNonNull(event, "event"));
  return RequireNonNull(event->state.get(), "event state");
}

XM_ENTRY(PJRT_Event_Destroy, event) {
  delete args.event;
  return Ok();
}

XM_ENTRY(PJRT_Event_IsReady, is_ready) {
  XM_RETURN_IF_ERROR(RequireEvent(args.event));
  args.is_ready = args.event->state->IsReady();
  return Ok();
}

XM_ENTRY(PJRT_Event_Error, event) {
  XM_RETURN_IF_ERROR(RequireEvent(args.event));
  return args.event->state->Error();
}

XM_ENTRY(PJRT_Event_Await, event) {
  XM_RETURN_IF_ERROR(RequireEvent(args.event));
  return args.event->state->Await();
}

XM_ENTRY(PJRT_Event_OnReady, user_arg) {
  XM_RETURN_IF_ERROR(RequireEvent(args.event));
  XM_RETURN_IF_ERROR(RequireNonNull(reinterpret_cast<const void*>(args.callback), "callback"));
  // Keep the state alive even if the callback destroys args.event.
  std::shared_ptr<EventState> state = args.event->state;
  state->OnReady(args.callback, args.user_arg);
  return Ok();
}

}  // namespace

void FillErrorAndEventSlots(PJRT_Api& api) {
  api.PJRT_Error_Destroy = PJRT_Error_Destroy;
  api.PJRT_Error_Message = PJRT_Error_Message;
  api.PJRT_Error_GetCode = PJRT_Error_GetCode;
  api.PJRT_Event_Destroy = PJRT_Event_Destroy;
  api.PJRT_Event_IsReady = PJRT_Event_IsReady;
  api.PJRT_Event_Error = PJRT_Event_Error;
  api.PJRT_Event_Await = PJRT_Event_Await;
  api.PJRT_Event_OnReady = PJRT_Event_OnReady;
}

}  // namespace xla_metal
