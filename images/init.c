/*
 * init: PID 1 of every test guest. It only does what must happen inside the guest and reports
 * each step on the console in the strict `harness: ` protocol that runner/src/protocol.rs
 * parses; all judging happens on the host.
 *
 * /plan holds one module load per line: `<bpf_jit_enable> <bpf_jit_harden> <module params>`.
 * Then, if the image has a bundle, the agent runs it (images/agent/PROTOCOL.md). A guest
 * restored from a snapshot gets its bundle through a shared-memory window instead.
 *
 * Plain C and Linux syscalls, built statically by Debian's cross compilers for every guest, so
 * the guest needs no userland of its own.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define TEST_MODULE "/test_bpf.ko"
#define EXTRA_MODULES "/lib/extra"
#define AGENT "/bin/bpf-agent"
#define BUNDLE "/agent/bundle"
/* QEMU's ivshmem-plain (vendor 0x1af4, device 0x1110): its BAR 2 is the host's window file. */
#define WINDOW_VENDOR "0x1af4"
#define WINDOW_DEVICE "0x1110"
#define PCI_DEVICES "/sys/bus/pci/devices"

/* The plan said `bundle`: the agent's bundle is in the window, once the host has put it. */
static int bundle_in_window;

/* Prints one line on the console. The whole line goes out in one write(2), so that a kernel
 * message cannot land in the middle of a protocol line. */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2; /* truncated */
	line[n++] = '\n';
	for (int done = 0; done < n;) {
		ssize_t w = write(STDOUT_FILENO, line + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		done += w;
	}
}

/* Writes `text` and a newline to a /proc file, as `echo text > path` does. */
static int write_file(const char *path, const char *text)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s\n", text);
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	int ok = n > 0 && (size_t)n < sizeof(buf) && write(fd, buf, n) == n;
	return close(fd) == 0 && ok ? 0 : -1;
}

/* A child's end as a shell's `$?` gives it: the exit status, or 128 + the signal. */
static int wait_for(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			say("harness: error cannot wait for process %d: %s", (int)pid, strerror(errno));
			return 255;
		}
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Loads a module with finit_module(2), once: unlike busybox insmod, never again with
 * init_module(2), which would run test_bpf's whole suite a second time. It runs in a child, so
 * that an Oops in the module's init kills that child, not PID 1 (which would panic the kernel).
 * Returns 0, or the errno as busybox insmod's exit status gave it (EINVAL when tests failed).
 * Children end with _exit(): exit() would flush PID 1's stdio and could move /plan's offset. */
static int load_module(const char *path, const char *params)
{
	pid_t pid = fork();

	if (pid < 0) {
		say("harness: error cannot fork to load %s: %s", path, strerror(errno));
		return 255;
	}
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || syscall(SYS_finit_module, fd, params, 0) != 0) {
			int err = errno;
			say("init: cannot load %s: %s", path, strerror(err));
			_exit(err > 0 && err < 256 ? err : 255);
		}
		_exit(0);
	}
	return wait_for(pid);
}

/* Sets a sysctl under /proc/sys/net/core/ or says it could not. */
static void set_sysctl(const char *name, const char *value)
{
	char path[128];

	snprintf(path, sizeof(path), "/proc/sys/net/core/%s", name);
	if (write_file(path, value) != 0)
		say("harness: error cannot set net.core.%s to %s", name, value);
}

/* Runs every line of /plan. A line is `read -r enable harden params`: two words, then the rest
 * untouched (it may hold double quotes and spaces, which the kernel parses itself). */
static void run_plan(void)
{
	FILE *plan = fopen("/plan", "re");
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	int index = 0;

	if (!plan) {
		say("harness: error cannot read /plan: %s", strerror(errno));
		return;
	}
	while ((len = getline(&line, &size, plan)) >= 0) {
		while (len > 0 && strchr(" \t\r\n", line[len - 1]))
			line[--len] = '\0';
		char *rest = line + strspn(line, " \t");
		if (!*rest)
			continue; /* the host writes no blank lines; never load for one */
		char *enable = strsep(&rest, " \t");
		char *harden = rest ? strsep(&rest, " \t") : "";
		char *params = rest ? rest + strspn(rest, " \t") : "";

		set_sysctl("bpf_jit_enable", enable);
		set_sysctl("bpf_jit_harden", harden);
		say("harness: load-begin %d", index);
		int code = load_module(TEST_MODULE, params);
		say("harness: load-end %d %d", index, code);
		/* A module whose tests all passed stays loaded; the next load needs it gone. */
		syscall(SYS_delete_module, "test_bpf", O_NONBLOCK);
		index++;
	}
	free(line);
	fclose(plan);
}

/* The kernel's free memory in KiB (MemFree of /proc/meminfo), or 0. */
static long free_kib(void)
{
	FILE *meminfo = fopen("/proc/meminfo", "re");
	char line[128];
	long kib = 0;

	while (meminfo && fgets(line, sizeof(line), meminfo))
		if (sscanf(line, "MemFree: %ld kB", &kib) == 1)
			break;
	if (meminfo)
		fclose(meminfo);
	return kib;
}

/* Clears the memory the kernel has free, before the host saves this guest. Pages freed since
 * boot (the initramfs as loaded, the kernel's init sections, what the decompressor left)
 * still hold their old bytes, and QEMU saves, and every restored guest holds, each page that
 * is not all zeros. The kernel clears each page this maps as it faults it in, and frees it,
 * zeroed, at munmap. */
static void zero_free_memory(void)
{
	/* Left to the kernel, above its watermarks: PID 1 must not meet the OOM killer. */
	long free = free_kib();
	long kib = free - (16 * 1024 + free / 16);

	if (kib <= 0)
		return;
	size_t len = (size_t)kib * 1024;
	void *pages = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (pages != MAP_FAILED)
		munmap(pages, len);
}

/* A guest the host snapshots once booted and restores for each run: it says it is ready,
 * then takes its plan from the console, the lines between `begin` and `end`, into /plan.
 * Whatever comes before `begin` is skipped: a restore may cut the first bytes sent. */
static void plan_from_console(void)
{
	struct termios tty;

	if (tcgetattr(STDIN_FILENO, &tty) == 0) {
		tty.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		tcsetattr(STDIN_FILENO, TCSANOW, &tty);
	}
	zero_free_memory();
	say("harness: ready");
	FILE *in = fdopen(dup(STDIN_FILENO), "r");
	FILE *plan = fopen("/plan", "we");
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	int begun = 0;

	if (!in || !plan) {
		say("harness: error cannot take the plan from the console: %s", strerror(errno));
		return;
	}
	while ((len = getline(&line, &size, in)) >= 0) {
		while (len > 0 && strchr("\r\n", line[len - 1]))
			line[--len] = '\0';
		if (!begun) {
			begun = strcmp(line, "begin") == 0;
			continue;
		}
		if (strcmp(line, "end") == 0)
			break;
		if (strcmp(line, "bundle") == 0)
			bundle_in_window = 1;
		else
			fprintf(plan, "%s\n", line);
	}
	free(line);
	fclose(plan);
	fclose(in);
}

/* Whether the first line of the sysfs file `dir`/`name` starts with `value`. */
static int sysfs_is(const char *dir, const char *name, const char *value)
{
	char path[512], line[64] = "";
	FILE *file;

	snprintf(path, sizeof(path), PCI_DEVICES "/%s/%s", dir, name);
	file = fopen(path, "re");
	if (!file)
		return 0;
	int read = fgets(line, sizeof(line), file) != NULL;
	fclose(file);
	return read && strncmp(line, value, strlen(value)) == 0;
}

/* Puts the path of the window device's BAR 2 into `path`, its memory decoding on; or returns -1.
 */
static int find_window(char *path, size_t size)
{
	DIR *devices = opendir(PCI_DEVICES);
	struct dirent *entry;
	int found = -1;

	while (devices && found != 0 && (entry = readdir(devices))) {
		if (entry->d_name[0] == '.' || !sysfs_is(entry->d_name, "vendor", WINDOW_VENDOR) ||
		    !sysfs_is(entry->d_name, "device", WINDOW_DEVICE))
			continue;
		/* Malta's firmware leaves a device without a driver with its memory decoding off,
		 * and the BAR reads as zeros. */
		snprintf(path, size, PCI_DEVICES "/%s/enable", entry->d_name);
		write_file(path, "1");
		snprintf(path, size, PCI_DEVICES "/%s/resource2", entry->d_name);
		found = access(path, R_OK);
	}
	if (devices)
		closedir(devices);
	return found;
}

/* Waits for the host's `bundle-ready` line on the console. */
static int wait_for_bundle(void)
{
	char line[64];
	size_t len = 0;

	while (len < sizeof(line) - 1) {
		ssize_t n = read(STDIN_FILENO, line + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		if (line[len] == '\n') {
			line[len] = '\0';
			if (strcmp(line, "bundle-ready") == 0)
				return 0;
			len = 0; /* a stray line: not the answer */
			continue;
		}
		len++;
	}
	return -1;
}

/* Where the agent reads its bundle: BUNDLE in the image, or the window's BAR (NUL-terminated
 * text, which the agent maps). The host writes the window when asked, once the guest is
 * restored and runs. */
static char bundle_path[512] = BUNDLE;

static void bundle_from_window(void)
{
	say("harness: bundle-wanted");
	if (wait_for_bundle() != 0) {
		say("harness: error the console closed before the host sent the bundle");
		return;
	}
	if (find_window(bundle_path, sizeof(bundle_path)) != 0) {
		say("harness: error no shared-memory window (ivshmem) in " PCI_DEVICES);
		snprintf(bundle_path, sizeof(bundle_path), "%s", BUNDLE);
	}
}

static int is_module(const struct dirent *entry)
{
	size_t n = strlen(entry->d_name);
	return n > 3 && strcmp(entry->d_name + n - 3, ".ko") == 0;
}

/* Loads the modules the agent's cases need (veth for real-device XDP); a kernel with those
 * built in has none in the image. Done before the template is saved, so that a guest restored
 * from it does not pay the load (60 ms of each guest's 0.4 s under TCG on x86_64). */
static void load_extra_modules(void)
{
	struct dirent **modules;
	int n = scandir(EXTRA_MODULES, &modules, is_module, alphasort);
	char path[512];

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), EXTRA_MODULES "/%s", modules[i]->d_name);
		load_module(path, "");
		free(modules[i]);
	}
	if (n >= 0)
		free(modules);
}

/* Runs the agent on `bundle`. */
static void run_agent(const char *bundle)
{
	say("harness: agent-begin");
	pid_t pid = fork();
	if (pid == 0) {
		char *argv[] = {AGENT, (char *)bundle, "/dev/ttyS1", NULL};
		execv(AGENT, argv);
		say("init: cannot run " AGENT ": %s", strerror(errno));
		_exit(127);
	}
	int code = 255;
	if (pid < 0)
		say("harness: error cannot fork for the agent: %s", strerror(errno));
	else
		code = wait_for(pid);
	say("harness: agent-end %d", code);
}

/* Fault injection, for the harness's own tests: crash the kernel `seconds` after init starts,
 * in the middle of the run. */
static void inject_panic(FILE *file)
{
	unsigned seconds;

	if (fscanf(file, "%u", &seconds) != 1) {
		say("harness: error /inject-panic holds no number of seconds");
		return;
	}
	pid_t pid = fork();
	if (pid < 0)
		say("harness: error cannot fork for /inject-panic: %s", strerror(errno));
	if (pid == 0) {
		sleep(seconds);
		write_file("/proc/sysrq-trigger", "c");
		_exit(0);
	}
}

static void mount_fs(const char *type, const char *target)
{
	if (mount(type, target, type, 0, NULL) != 0)
		say("harness: error cannot mount %s on %s: %s", type, target, strerror(errno));
}

int main(void)
{
	int console = open("/dev/console", O_RDWR | O_NOCTTY);
	if (console >= 0) {
		dup2(console, STDIN_FILENO);
		dup2(console, STDOUT_FILENO);
		dup2(console, STDERR_FILENO);
		if (console > STDERR_FILENO)
			close(console);
	}
	mount_fs("proc", "/proc");
	mount_fs("sysfs", "/sys");
	/* /dev/ttyS1, the agent's channel, comes from devtmpfs. */
	mount_fs("devtmpfs", "/dev");
	load_extra_modules();
	if (access("/plan-from-console", F_OK) == 0)
		plan_from_console();
	say("harness: start");
	struct utsname uts;
	if (uname(&uts) == 0)
		say("harness: uname %s", uts.release);
	else
		say("harness: error uname: %s", strerror(errno));

	FILE *panic = fopen("/inject-panic", "re");
	if (panic) {
		inject_panic(panic);
		fclose(panic);
	}
	run_plan();
	if (bundle_in_window)
		bundle_from_window();
	if (access(bundle_path, F_OK) == 0)
		run_agent(bundle_path);

	say("harness: done");
	sync();
	/* With QEMU's -no-reboot, a reboot ends QEMU: the quickest clean way out on every arch. */
	reboot(RB_AUTOBOOT);
	/* PID 1 must never return: that panics the kernel. */
	say("harness: error cannot reboot: %s", strerror(errno));
	for (;;)
		pause();
}
