/* dispatch.h: deferred destruction for objects whose user callbacks may
 * free them (the HTTP client, the Connect client). Every entry point that
 * may run a user callback is bracketed by dispatch_begin()/dispatch_end();
 * a free from inside a callback only marks the object (freeing), and the
 * outermost frame destroys it as it unwinds, so that no frame still on the
 * stack touches freed memory. */
#pragma once

#include <stdbool.h>

struct dispatch {
        unsigned depth;               /* frames that may run user callbacks */
        bool freeing;                 /* free was asked: destroy when depth drops to 0 */
        void (*destroy)(void *object);
        void *object;
};

static inline void dispatch_init(struct dispatch *d, void (*destroy)(void *object), void *object) {
        *d = (struct dispatch){ .destroy = destroy, .object = object };
}

static inline void dispatch_begin(struct dispatch *d) {
        d->depth++;
}

/* May destroy the object (d with it): the caller's last use of it. */
static inline void dispatch_end(struct dispatch *d) {
        if (--d->depth == 0 && d->freeing)
                d->destroy(d->object);
}

/* For the object's free function: false when it was already being freed
 * (nothing to do), else marks it. Then destroy it at once if
 * dispatch_idle(), else the outermost dispatch_end() will. */
static inline bool dispatch_mark_freeing(struct dispatch *d) {
        if (d->freeing)
                return false;
        d->freeing = true;
        return true;
}

static inline bool dispatch_idle(const struct dispatch *d) {
        return d->depth == 0;
}
