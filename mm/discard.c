/* discard.c - start-up fence between memory discards and their victims; see discard.h. */
#include "mm/discard.h"

#include <stdbool.h>

#include "vmm/util.h"

static const char *const kind_text[MM_DISCARD_KINDS] = {
    [MM_DISCARD_COORDINATED] = "discards guest memory (after notifying memory listeners)",
    [MM_DISCARD_UNCOORDINATED] = "discards guest memory without notifying memory listeners",
};

/* Does forbidding `forbidden` rule out discards of kind `kind`? */
static bool forbids(enum mm_discard_kind forbidden, enum mm_discard_kind kind)
{
    /* Forbidding coordinated discards forbids every discard. */
    return forbidden == MM_DISCARD_COORDINATED || forbidden == kind;
}

int mm_discard_require(struct mm_discard_policy *p, enum mm_discard_kind kind, const char *who,
                       char *err, size_t errlen)
{
    for (int f = 0; f < MM_DISCARD_KINDS; f++)
        if (p->forbidden[f] && forbids((enum mm_discard_kind)f, kind))
            return errf(err, errlen,
                        "%s %s, but %s must keep the memory it maps: they cannot be "
                        "used together",
                        who, kind_text[kind], p->forbidden[f]);
    if (!p->required[kind])
        p->required[kind] = who;
    return 0;
}

int mm_discard_forbid(struct mm_discard_policy *p, enum mm_discard_kind kind, const char *who,
                      char *err, size_t errlen)
{
    for (int r = 0; r < MM_DISCARD_KINDS; r++)
        if (p->required[r] && forbids(kind, (enum mm_discard_kind)r))
            return errf(err, errlen,
                        "%s %s, but %s must keep the memory it maps: they cannot be "
                        "used together",
                        p->required[r], kind_text[r], who);
    if (!p->forbidden[kind])
        p->forbidden[kind] = who;
    return 0;
}
