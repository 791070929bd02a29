/*
 * mkbzimage - write a minimal x86 bzImage whose 64-bit entry point runs the
 * given machine code.  Testbed tests use it to make a guest that crashes in a
 * known way (e.g. "0f0b": ud2 with no IDT, i.e. a triple fault).
 *
 * usage: mkbzimage OUTPUT HEXBYTES
 */
#include <asm/bootparam.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETUP_SECTS 4
#define KERNEL_SIZE 4096
#define ENTRY_64    0x200 /* startup_64 is 0x200 bytes into the kernel */
#define HDR_OFFSET  0x1f1

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: mkbzimage OUTPUT HEXBYTES\n");
        return 2;
    }
    size_t setup = (SETUP_SECTS + 1) * 512;
    static unsigned char img[(SETUP_SECTS + 1) * 512 + KERNEL_SIZE];
    struct setup_header h;
    memset(&h, 0, sizeof(h));
    h.setup_sects = SETUP_SECTS;
    h.boot_flag = 0xaa55;
    h.header = 0x53726448; /* "HdrS" */
    h.version = 0x020f;
    h.loadflags = LOADED_HIGH;
    h.xloadflags = XLF_KERNEL_64;
    h.cmdline_size = 255;
    h.pref_address = 0x100000;
    h.init_size = KERNEL_SIZE;
    h.initrd_addr_max = 0x7fffffff;
    memcpy(img + HDR_OFFSET, &h, sizeof(h));
    img[0x200] = 0xeb; /* jmp: its displacement gives the header length */
    img[0x201] = (unsigned char)(HDR_OFFSET + sizeof(h) - 0x202);

    const char *hex = argv[2];
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > KERNEL_SIZE - ENTRY_64) {
        fprintf(stderr, "mkbzimage: '%s' is not an even number of hex digits that fits\n", hex);
        return 2;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            fprintf(stderr, "mkbzimage: bad hex digits in '%s'\n", hex);
            return 2;
        }
        img[setup + ENTRY_64 + i] = (unsigned char)v;
    }
    FILE *f = fopen(argv[1], "wb");
    if (!f || fwrite(img, sizeof(img), 1, f) != 1 || fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
