/*
 * machine.c - per-machine findings. A client is the pair (CMID, app), but
 * an image cloned without sysprep, a wrong clock or a machine gone idle is
 * one MACHINE, whatever it activates: reporting it once per application
 * would list one problem twice. A walk visits the pairs of a CMID one
 * after the other (store key order), so one accumulator (struct rp_mach)
 * is enough: it is finished when the next CMID starts, and at the end.
 *
 * Workstation names are compared as DNS names (kr_pin_name_eq: case and a
 * trailing dot ignored), across all pairs of the machine.
 */
#include <string.h>

#include "kmsrelay/guid.h"
#include "report/report-internal.h"

static void note_name(struct rp_mach *m, const struct kr_pin_name *n)
{
    for (unsigned i = 0; i < m->n_names; i++) {
        if (kr_pin_name_eq(m->names[i].name, n->name)) {
            if (n->last_seen > m->names[i].last_seen)
                m->names[i] = *n; /* the latest spelling and time */
            return;
        }
    }
    if (m->n_names < RP_MACH_NAMES)
        m->names[m->n_names++] = *n;
}

static int64_t abs_skew(const struct kr_pin *p)
{
    return p->skew_s < 0 ? -(int64_t)p->skew_s : p->skew_s;
}

void rp_mach_add(struct rp *x, const struct kr_pin *p, void (*end)(struct rp *x))
{
    struct rp_mach *m = &x->m;
    if (m->have && memcmp(m->cmid, p->cmid, 16) != 0)
        end(x);
    if (!m->have) {
        memset(m, 0, sizeof(*m));
        m->have = true;
        memcpy(m->cmid, p->cmid, 16);
    }
    m->app_mask |= (uint8_t)(1u << rp_app(x, p->app_id));
    if (!m->last_seen || p->last_seen > m->last_seen) {
        m->last_seen = p->last_seen;
        m->latest = *p;
    }
    if (p->last_seen >= x->window_start) {
        if (abs_skew(p) > x->o.skew_s && (!m->skewed || abs_skew(p) > abs_skew(&m->skew))) {
            m->skewed = true;
            m->skew = *p;
        }
        for (unsigned i = 0; i < p->n_names && i < KR_PIN_NAMES; i++)
            if (p->names[i].last_seen >= x->window_start)
                note_name(m, &p->names[i]);
    }
    if (!kr_guid_is_zero(p->prev_cmid) && (!m->chained || p->last_seen >= m->link.last_seen)) {
        m->chained = true;
        m->link = *p;
    }
}

void rp_mach_end1(struct rp *x)
{
    struct rp_mach *m = &x->m;
    if (!m->have)
        return;
    m->have = false;
    if (m->last_seen >= x->window_start)
        x->machines++;
    if (m->skewed && rp_list_room(x, RP_SKEW))
        rp_list_add(x, RP_SKEW, rp_item_skew(x, m));
    if (m->n_names >= 2 && rp_list_room(x, RP_CLONED))
        rp_list_add(x, RP_CLONED, rp_item_cloned(x, m));
    if (m->last_seen < x->stale_before) {
        x->stale_candidates++;
        x->second_walk = true; /* listed by walk 2, once chains are known */
    }
}

void rp_mach_end2(struct rp *x)
{
    struct rp_mach *m = &x->m;
    if (!m->have)
        return;
    m->have = false;
    /* A CMID a newer one replaced is in that one's chain, not "gone". */
    if (m->last_seen < x->stale_before && !rp_is_replaced(x, m->cmid) && rp_list_room(x, RP_STALE))
        rp_list_add(x, RP_STALE, rp_item_stale(x, m));
    if (m->chained && rp_link_is_head(x, m->cmid) && rp_list_room(x, RP_CHANGED))
        rp_list_add(x, RP_CHANGED, rp_item_changed(x, m));
}
