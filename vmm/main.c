/* main.c - minivmm entry point: parse the command line, run the VM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/config.h"
#include "vmm/ctl.h"
#include "vmm/util.h"
#include "vmm/vm.h"

int main(int argc, char **argv)
{
    struct vm_config cfg;
    char err[512];

    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return ctl_client_main(argc - 1, argv + 1);

    switch (config_parse(&cfg, argc, argv, err, sizeof(err))) {
    case CONFIG_HELP:
        fputs(config_usage(), stdout);
        return 0;
    case CONFIG_VERSION:
        printf("minivmm %s\n", MINIVMM_VERSION);
        return 0;
    case CONFIG_ERROR:
        die_usage("%s", err);
    case CONFIG_OK:
        break;
    }
    log_verbose = cfg.verbose;
    /*
     * Past ulimit -f, growing a memfd or the console file must fail with
     * EFBIG (reported in one line) instead of killing minivmm with SIGXFSZ.
     */
    signal(SIGXFSZ, SIG_IGN);

    static struct vm vm;
    vm_create(&vm, &cfg);
    int status = vm_run(&vm);
    vm_destroy(&vm);
    return status;
}
