/*
 * A stand-in for NVIDIA's libnvidia-ml.so.1, so the real nvidia-ml-py (pynvml)
 * code path runs on machines without a GPU.  The test suite compiles it with
 * the system `cc` and puts its directory on LD_LIBRARY_PATH; pynvml dlopens it
 * by that name.
 *
 * The cards and their processes come from the text file named by
 * $LABSHARE_FAKE_NVML, re-read on every call so a test can change it while the
 * process under test runs.  No variable, or a file that cannot be opened, makes
 * every init fail as on a host without the driver (NVML_ERROR_DRIVER_NOT_LOADED);
 * a line that does not parse is reported on stderr and fails the call
 * (NVML_ERROR_UNKNOWN), so a typo in a test never passes as "no GPU".
 *
 *   # comments and blank lines are ignored
 *   driver 550.54.15                          (default 550.54.15)
 *   nvml 12.550.54.15                         (default 12.550.54.15)
 *   cuda 12040                                (default 12040)
 *   gpu UUID "NAME" BUSID TOTAL_MIB USED_MIB UTIL% [mem=PCT] [reserved=MIB] [pci=0xID]
 *   proc GPU_INDEX PID USED_MIB SM_UTIL% [compute|graphics|both] [seen=USEC] [mem=PCT] [gi=N] [ci=N]
 *
 * UTIL% "-" means the board has no utilisation counters (NVML_ERROR_NOT_SUPPORTED);
 * a process's USED_MIB "-" means the driver does not say (pynvml gives None).
 * Each proc line is one per-process utilisation sample taken at `seen`
 * (microseconds since the epoch, default: now), returned by
 * nvmlDeviceGetProcessUtilization when newer than the caller's timestamp.
 * Struct layouts are those of nvml.h (and of pynvml's ctypes mirrors).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;
typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

_Static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t layout");
_Static_assert(sizeof(nvmlMemory_t) == 24, "nvmlMemory_t layout");
_Static_assert(sizeof(nvmlMemory_v2_t) == 40, "nvmlMemory_v2_t layout");
_Static_assert(sizeof(nvmlProcessInfo_t) == 24, "nvmlProcessInfo_t layout");
_Static_assert(sizeof(nvmlProcessUtilizationSample_t) == 32, "sample layout");

#define NVML_MEMORY_V2 (sizeof(nvmlMemory_v2_t) | (2u << 24))
#define MAX_GPUS 32
#define MAX_PROCS 512
#define MIB (1ULL << 20)
#define NOT_AVAILABLE 0xFFFFFFFFFFFFFFFFULL
#define NO_INSTANCE 0xFFFFFFFFu
#define COMPUTE 1
#define GRAPHICS 2

struct gpu {
    char uuid[96], name[96], bus_id[32];
    unsigned int domain, bus, device, pci_id;
    unsigned long long total, used, reserved;
    int util, mem_util; /* util < 0: not supported */
};
struct proc {
    unsigned int gpu, pid, gi, ci;
    unsigned long long used, seen;
    unsigned int sm, mem;
    int kind;
};
struct fake {
    char driver[80], nvml[80];
    int cuda;
    unsigned int ngpus, nprocs;
    struct gpu gpus[MAX_GPUS];
    struct proc procs[MAX_PROCS];
};
typedef struct nvmlDevice_st { unsigned int index; } *nvmlDevice_t;

static struct nvmlDevice_st handles[MAX_GPUS];
static int refs;

static unsigned long long now_usec(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000000ULL + (unsigned long long)tv.tv_usec;
}

/* The next word (or "quoted words") of *cursor into out: 1 found, 0 end of line, -1 bad. */
static int token(char **cursor, char *out, size_t size) {
    char *p = *cursor, *end;
    size_t n;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0' || *p == '\n' || *p == '#') return 0;
    if (*p == '"') {
        end = strchr(++p, '"');
        if (end == NULL) return -1;
        n = (size_t)(end - p);
        *cursor = end + 1;
    } else {
        n = strcspn(p, " \t\n");
        *cursor = p + n;
    }
    if (n >= size) return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

static int number(const char *text, unsigned long long *value) {
    char *end;
    if (*text == '\0' || *text == '-') return 0;
    *value = strtoull(text, &end, 0);
    return *end == '\0';
}

static int percent(const char *text, int *value) {
    unsigned long long v;
    if (strcmp(text, "-") == 0) { *value = -1; return 1; }
    if (!number(text, &v) || v > 100) return 0;
    *value = (int)v;
    return 1;
}

/* key=value options after the fixed fields of a gpu or proc line. */
static int option(const char *word, const char *key, unsigned long long *value) {
    size_t n = strlen(key);
    return strncmp(word, key, n) == 0 && word[n] == '=' && number(word + n + 1, value);
}

static int parse_gpu(char *rest, struct gpu *g) {
    char word[128], total[32], used[32], util[32];
    unsigned long long v, t, u;
    memset(g, 0, sizeof *g);
    g->pci_id = 0x20B510DE;
    if (token(&rest, g->uuid, sizeof g->uuid) != 1 || token(&rest, g->name, sizeof g->name) != 1 ||
        token(&rest, g->bus_id, sizeof g->bus_id) != 1 || token(&rest, total, sizeof total) != 1 ||
        token(&rest, used, sizeof used) != 1 || token(&rest, util, sizeof util) != 1)
        return 0;
    if (sscanf(g->bus_id, "%x:%x:%x.", &g->domain, &g->bus, &g->device) != 3) return 0;
    if (!number(total, &t) || !number(used, &u) || u > t || !percent(util, &g->util)) return 0;
    g->total = t * MIB;
    g->used = u * MIB;
    while (token(&rest, word, sizeof word) == 1) {
        if (option(word, "mem", &v) && v <= 100) g->mem_util = (int)v;
        else if (option(word, "reserved", &v)) g->reserved = v * MIB;
        else if (option(word, "pci", &v)) g->pci_id = (unsigned int)v;
        else return 0;
    }
    return g->used + g->reserved <= g->total;
}

static int parse_proc(char *rest, struct proc *p) {
    char word[64], gpu[32], pid[32], used[32], sm[32];
    unsigned long long v;
    int util;
    memset(p, 0, sizeof *p);
    p->kind = COMPUTE;
    p->gi = p->ci = NO_INSTANCE;
    p->seen = now_usec();
    if (token(&rest, gpu, sizeof gpu) != 1 || token(&rest, pid, sizeof pid) != 1 ||
        token(&rest, used, sizeof used) != 1 || token(&rest, sm, sizeof sm) != 1)
        return 0;
    if (!number(gpu, &v) || v >= MAX_GPUS) return 0;
    p->gpu = (unsigned int)v;
    if (!number(pid, &v) || v == 0 || v > 0xFFFFFFFFULL) return 0;
    p->pid = (unsigned int)v;
    if (strcmp(used, "-") == 0) p->used = NOT_AVAILABLE;
    else if (number(used, &v)) p->used = v * MIB;
    else return 0;
    if (!percent(sm, &util) || util < 0) return 0;
    p->sm = (unsigned int)util;
    while (token(&rest, word, sizeof word) == 1) {
        if (strcmp(word, "compute") == 0) p->kind = COMPUTE;
        else if (strcmp(word, "graphics") == 0) p->kind = GRAPHICS;
        else if (strcmp(word, "both") == 0) p->kind = COMPUTE | GRAPHICS;
        else if (option(word, "seen", &v)) p->seen = v;
        else if (option(word, "mem", &v) && v <= 100) p->mem = (unsigned int)v;
        else if (option(word, "gi", &v)) p->gi = (unsigned int)v;
        else if (option(word, "ci", &v)) p->ci = (unsigned int)v;
        else return 0;
    }
    return 1;
}

/* A `driver`, `nvml` or `cuda` line: exactly one value. */
static int parse_setting(struct fake *f, const char *key, char *rest) {
    char value[80], extra[8];
    unsigned long long v;
    if (token(&rest, value, sizeof value) != 1 || token(&rest, extra, sizeof extra) != 0) return 0;
    if (strcmp(key, "driver") == 0) strcpy(f->driver, value);
    else if (strcmp(key, "nvml") == 0) strcpy(f->nvml, value);
    else if (strcmp(key, "cuda") == 0 && number(value, &v)) f->cuda = (int)v;
    else return 0;
    return 1;
}

static int parse_line(struct fake *f, char *line) {
    char word[16];
    int found = token(&line, word, sizeof word);
    if (found == 0) return 1;
    if (found < 0) return 0;
    if (strcmp(word, "gpu") == 0) return f->ngpus < MAX_GPUS && parse_gpu(line, &f->gpus[f->ngpus++]);
    if (strcmp(word, "proc") == 0) return f->nprocs < MAX_PROCS && parse_proc(line, &f->procs[f->nprocs++]);
    return parse_setting(f, word, line);
}

static void fail_load(const char *path, struct fake *f, FILE *file, const char *why, unsigned int line) {
    fprintf(stderr, "nvml stub: %s:%u: %s\n", path, line, why);
    if (file != NULL) fclose(file);
    free(f);
}

/* Read the file into a fresh struct: NVML_SUCCESS, DRIVER_NOT_LOADED or UNKNOWN. */
static nvmlReturn_t load(struct fake **out) {
    const char *path = getenv("LABSHARE_FAKE_NVML");
    char line[512];
    unsigned int lineno = 0, i;
    struct fake *f;
    FILE *file;
    if (path == NULL || *path == '\0' || (file = fopen(path, "r")) == NULL) return NVML_ERROR_DRIVER_NOT_LOADED;
    f = calloc(1, sizeof *f);
    if (f == NULL) { fclose(file); return NVML_ERROR_UNKNOWN; }
    strcpy(f->driver, "550.54.15");
    strcpy(f->nvml, "12.550.54.15");
    f->cuda = 12040;
    while (fgets(line, sizeof line, file) != NULL) {
        lineno++;
        if (!parse_line(f, line)) {
            fail_load(path, f, file, "this line does not parse", lineno);
            return NVML_ERROR_UNKNOWN;
        }
    }
    fclose(file);
    for (i = 0; i < f->nprocs; i++) {
        if (f->procs[i].gpu >= f->ngpus) {
            fail_load(path, f, NULL, "a proc line names a GPU index that no gpu line gives", 0);
            return NVML_ERROR_UNKNOWN;
        }
    }
    *out = f;
    return NVML_SUCCESS;
}

static void release(struct fake **f) { free(*f); }
#define FAKE __attribute__((cleanup(release))) struct fake *

static nvmlReturn_t initialise(void) {
    FAKE f = NULL;
    nvmlReturn_t ret = load(&f);
    if (ret == NVML_SUCCESS) __atomic_add_fetch(&refs, 1, __ATOMIC_SEQ_CST);
    return ret;
}

static nvmlReturn_t loaded(struct fake **f) {
    if (__atomic_load_n(&refs, __ATOMIC_SEQ_CST) <= 0) return NVML_ERROR_UNINITIALIZED;
    return load(f);
}

/* The card behind a handle, as the file says now (it may have changed since the handle was given). */
static nvmlReturn_t card(nvmlDevice_t device, struct fake **f, const struct gpu **g) {
    nvmlReturn_t ret = loaded(f);
    if (ret != NVML_SUCCESS) return ret;
    if (device < handles || device >= handles + MAX_GPUS || device->index >= (*f)->ngpus)
        return NVML_ERROR_INVALID_ARGUMENT;
    *g = &(*f)->gpus[device->index];
    return NVML_SUCCESS;
}

/* What every per-card call starts with: the file as it is now, the card behind `device`, `out` given. */
#define CARD(device, out)                                                                                 \
    FAKE f = NULL;                                                                                        \
    const struct gpu *g;                                                                                  \
    nvmlReturn_t ret = card((device), &f, &g);                                                            \
    if (ret != NVML_SUCCESS) return ret;                                                                  \
    if ((out) == NULL) return NVML_ERROR_INVALID_ARGUMENT

static nvmlReturn_t copy_text(const char *text, char *out, unsigned int length) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) >= length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

static nvmlDevice_t handle(unsigned int index) {
    handles[index].index = index;
    return &handles[index];
}

/* ---- init and the system --------------------------------------------------------------- */

nvmlReturn_t nvmlInit(void) { return initialise(); }
nvmlReturn_t nvmlInit_v2(void) { return initialise(); }
nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { (void)flags; return initialise(); }

nvmlReturn_t nvmlShutdown(void) {
    int left = __atomic_load_n(&refs, __ATOMIC_SEQ_CST);
    while (left > 0 && !__atomic_compare_exchange_n(&refs, &left, left - 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return left > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    FAKE f = NULL;
    nvmlReturn_t ret = loaded(&f);
    return ret != NVML_SUCCESS ? ret : copy_text(f->driver, version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    FAKE f = NULL;
    nvmlReturn_t ret = load(&f); /* NVML answers this one before init too */
    return ret != NVML_SUCCESS ? ret : copy_text(f->nvml, version, length);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    FAKE f = NULL;
    nvmlReturn_t ret = loaded(&f);
    if (ret != NVML_SUCCESS) return ret;
    if (version == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *version = f->cuda;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) { return nvmlSystemGetCudaDriverVersion(version); }

/* ---- finding a card -------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    FAKE f = NULL;
    nvmlReturn_t ret = loaded(&f);
    if (ret != NVML_SUCCESS) return ret;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = f->ngpus;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    FAKE f = NULL;
    nvmlReturn_t ret = loaded(&f);
    if (ret != NVML_SUCCESS) return ret;
    if (device == NULL || index >= f->ngpus) return NVML_ERROR_INVALID_ARGUMENT;
    *device = handle(index);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

/* By UUID or (by_bus) by PCI bus id, compared case-insensitively as NVML does. */
static nvmlReturn_t find(const char *wanted, int by_bus, nvmlDevice_t *device) {
    FAKE f = NULL;
    unsigned int i;
    nvmlReturn_t ret = loaded(&f);
    if (ret != NVML_SUCCESS) return ret;
    if (wanted == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (i = 0; i < f->ngpus; i++) {
        if (strcasecmp(by_bus ? f->gpus[i].bus_id : f->gpus[i].uuid, wanted) == 0) {
            *device = handle(i);
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) { return find(uuid, 0, device); }
nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus, nvmlDevice_t *device) { return find(bus, 1, device); }
nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *bus, nvmlDevice_t *device) { return find(bus, 1, device); }

/* ---- what a card is -------------------------------------------------------------------- */

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index) {
    CARD(device, index);
    *index = device->index;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    CARD(device, name);
    return copy_text(g->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    CARD(device, uuid);
    return copy_text(g->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    CARD(device, pci);
    memset(pci, 0, sizeof *pci);
    snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0", g->domain & 0xFFFF, g->bus, g->device);
    pci->domain = g->domain;
    pci->bus = g->bus;
    pci->device = g->device;
    pci->pciDeviceId = g->pci_id;
    pci->pciSubSystemId = 0x145F10DE;
    strcpy(pci->busId, g->bus_id);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci) { return nvmlDeviceGetPciInfo_v3(device, pci); }

/* ---- how full and how busy ------------------------------------------------------------- */

/* v1 counts the driver's reserved memory as used, as the real library does. */
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    CARD(device, memory);
    memory->total = g->total;
    memory->used = g->used + g->reserved;
    memory->free = g->total - memory->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    CARD(device, memory);
    if (memory->version != NVML_MEMORY_V2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory->total = g->total;
    memory->reserved = g->reserved;
    memory->used = g->used;
    memory->free = g->total - g->used - g->reserved;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    CARD(device, util);
    if (g->util < 0) return NVML_ERROR_NOT_SUPPORTED;
    util->gpu = (unsigned int)g->util;
    util->memory = (unsigned int)g->mem_util;
    return NVML_SUCCESS;
}

/* ---- who uses a card ------------------------------------------------------------------- */

/* NVML's two-call protocol: too small a buffer (or none) gives INSUFFICIENT_SIZE and the count needed. */
static nvmlReturn_t running(nvmlDevice_t device, int kind, unsigned int *count, nvmlProcessInfo_t *infos) {
    CARD(device, count);
    unsigned int i, n = 0;
    for (i = 0; i < f->nprocs; i++)
        if (f->procs[i].gpu == device->index && (f->procs[i].kind & kind)) n++;
    if (n == 0 || infos == NULL || *count < n) {
        *count = n;
        return n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (i = 0, n = 0; i < f->nprocs; i++) {
        const struct proc *p = &f->procs[i];
        if (p->gpu != device->index || !(p->kind & kind)) continue;
        infos[n].pid = p->pid;
        infos[n].usedGpuMemory = p->used;
        infos[n].gpuInstanceId = p->gi;
        infos[n].computeInstanceId = p->ci;
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_t *i) {
    return running(d, COMPUTE, c, i);
}
nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_t *i) {
    return running(d, COMPUTE, c, i);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_t *i) {
    return running(d, GRAPHICS, c, i);
}
nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v2(nvmlDevice_t d, unsigned int *c, nvmlProcessInfo_t *i) {
    return running(d, GRAPHICS, c, i);
}

/* Samples newer than last_seen; none at all is NOT_FOUND, as the real library says. */
nvmlReturn_t nvmlDeviceGetProcessUtilization(nvmlDevice_t device, nvmlProcessUtilizationSample_t *samples,
                                             unsigned int *count, unsigned long long last_seen) {
    CARD(device, count);
    unsigned int i, n = 0;
    for (i = 0; i < f->nprocs; i++)
        if (f->procs[i].gpu == device->index && f->procs[i].seen > last_seen) n++;
    if (n == 0) return NVML_ERROR_NOT_FOUND;
    if (samples == NULL || *count < n) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (i = 0, n = 0; i < f->nprocs; i++) {
        const struct proc *p = &f->procs[i];
        if (p->gpu != device->index || p->seen <= last_seen) continue;
        samples[n].pid = p->pid;
        samples[n].timeStamp = p->seen;
        samples[n].smUtil = p->sm;
        samples[n].memUtil = p->mem;
        samples[n].encUtil = 0;
        samples[n].decUtil = 0;
        n++;
    }
    *count = n;
    return NVML_SUCCESS;
}
