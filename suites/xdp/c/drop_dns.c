/* An XDP program written in C: drops IPv4 UDP datagrams to port 53 and counts every IPv4 UDP
 * datagram. Built by the harness with clang for the guest's byte order (-target bpfel/bpfeb);
 * no headers, so that no host architecture leaks into a BPF build. */

typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;

struct xdp_md {
	u32 data;
	u32 data_end;
};

/* The case's map, by name: the harness turns the relocation into a map reference. */
extern char counts[];

static void *(*map_lookup_elem)(void *map, const void *key) = (void *)1;

enum { XDP_DROP = 1, XDP_PASS = 2 };

__attribute__((section("xdp"), used)) int drop_dns(struct xdp_md *ctx)
{
	u8 *data = (u8 *)(unsigned long)ctx->data;
	u8 *end = (u8 *)(unsigned long)ctx->data_end;

	/* Ethernet, a 20-byte IPv4 header, UDP. Byte loads keep it byte-order neutral. */
	if (data + 14 + 20 + 8 > end)
		return XDP_PASS;
	if (data[12] != 0x08 || data[13] != 0x00 || data[14] != 0x45 || data[23] != 17)
		return XDP_PASS;
	u32 key = 0;
	u64 *count = map_lookup_elem(counts, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return data[36] == 0 && data[37] == 53 ? XDP_DROP : XDP_PASS;
}
