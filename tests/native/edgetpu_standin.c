/* A stand-in libedgetpu.so.1 for the tests: the same exported functions as the real library
 * (edgetpu_c.h and the TFLite external-delegate plugin ABI), each misbehaving the way a
 * broken install does. Built at test time by tests/standin.py with one of:
 *
 *   -DSTANDIN_SEGV      the delegate segfaults as it is created (a libedgetpu built for
 *                       another TensorFlow version: google-coral/edgetpu#812)
 *   -DSTANDIN_ILL       an illegal instruction there (a build for a newer CPU)
 *   -DSTANDIN_NODEVICE  no Edge TPU: no devices listed, the delegate is NULL
 *   -DSTANDIN_HANG      creating the delegate never returns
 *   -DSTANDIN_ABORT     creating the delegate aborts (as libedgetpu does on a USB error)
 *   -DSTANDIN_WORKS     a valid delegate that claims no node (so a CPU model runs through it)
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* TfLiteDelegate as TensorFlow Lite 2.x lays it out (tensorflow/lite/core/c/common.h). */
typedef struct TfLiteDelegate {
  void *data_;
  int (*Prepare)(void *context, struct TfLiteDelegate *delegate);
  int (*CopyFromBufferHandle)(void *, struct TfLiteDelegate *, int, void *);
  int (*CopyToBufferHandle)(void *, struct TfLiteDelegate *, int, void *);
  void (*FreeBufferHandle)(void *, struct TfLiteDelegate *, int *);
  int64_t flags;
  void *opaque_delegate_builder;
} TfLiteDelegate;

struct edgetpu_device {
  int type; /* 0 = PCI, 1 = USB */
  const char *path;
};

static struct edgetpu_device standin_devices[] = {{1, "/sys/bus/usb/devices/9-9"}};

const char *edgetpu_version(void) {
  return "BuildLabel(stand-in " STANDIN_NAME "), RuntimeVersion(14)";
}

struct edgetpu_device *edgetpu_list_devices(size_t *num_devices) {
#ifdef STANDIN_NODEVICE
  *num_devices = 0;
  return NULL;
#else
  *num_devices = 1;
  return standin_devices;
#endif
}

void edgetpu_free_devices(struct edgetpu_device *dev) { (void)dev; }

static int prepare(void *context, TfLiteDelegate *delegate) {
  (void)context;
  (void)delegate;
  return 0; /* kTfLiteOk: no node is claimed */
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t n,
                                              void (*report_error)(const char *)) {
  (void)keys;
  (void)values;
  (void)n;
  (void)report_error;
#if defined(STANDIN_SEGV)
  raise(SIGSEGV);
#elif defined(STANDIN_ILL)
  raise(SIGILL);
#elif defined(STANDIN_HANG)
  for (;;) pause();
#elif defined(STANDIN_ABORT)
  abort();
#elif defined(STANDIN_WORKS)
  TfLiteDelegate *d = calloc(1, sizeof *d);
  d->Prepare = prepare;
  return d;
#endif
  return NULL;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) { free(delegate); }
