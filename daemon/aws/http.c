/* http.c: HTTPS requests through one libcurl multi handle driven by
 * sd-event: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION
 * -> one sd_event io source per socket) and when to call it back
 * (CURLMOPT_TIMERFUNCTION -> one CLOCK_MONOTONIC time source). The loop
 * never blocks. One multi handle means one connection cache, so requests to
 * the same endpoint reuse their TLS connections.
 *
 * Owns: TLS policy (always verified, no switch), timeouts, the response
 * size cap, the AWS response headers we keep. Must not: know anything about
 * AWS signing or JSON, log (callers decide what an error means), call a
 * callback from inside http_submit().
 *
 * Lifetime rules: http_client_cancel_all() invokes the callbacks of every
 * request in flight with -ECANCELED before it returns. http_client_free()
 * drops requests in flight WITHOUT calling their callbacks. A callback may
 * submit, cancel or free the client (the memory then goes when the
 * callback returns); a request submitted to a client being freed is
 * refused with -ESHUTDOWN. An early failure in http_submit() (bad
 * argument, out of memory) is returned by it and the callback never runs.
 *
 * curl_global_init() runs once, in the first http_client_new();
 * curl_global_cleanup() is never called: it is not safe while other code
 * (another client, OpenSSL users) may still be alive, and the process exit
 * reclaims it. */
#include "http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <strings.h>
#include <sys/epoll.h>

#include "../dispatch.h"

#ifndef VERSION
#define VERSION "0"
#endif

#define HTTP_USER_AGENT "connect-numbersd/" VERSION
#define HTTP_DEFAULT_CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define HTTP_DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define HTTP_DEFAULT_MAX_RESPONSE ((size_t) 8 * 1024 * 1024)
#define HTTP_MAX_RESPONSE_LIMIT ((size_t) 1024 * 1024 * 1024)
/* Connect allows a handful of requests per second per operation; eight
 * parallel connections per host are plenty and keep us polite. The limit
 * is ours (struct http_host), not curl's queue: libcurl starts a
 * transfer's CURLOPT_TIMEOUT_MS when it is added to the multi handle, also
 * while it waits there for one of the host's connections, and then fails
 * it as it leaves that queue ("Resolving timed out after 0 milliseconds").
 * A request is handed to curl only when a connection is free for it, so
 * that its timeouts run from when it is sent. */
#define HTTP_MAX_HOST_CONNECTIONS 8L
#define HTTP_MAX_CACHED_CONNECTIONS 16L

struct http_socket {
        struct http_client *client;
        curl_socket_t fd;
        sd_event_source *source;
        struct http_socket *prev, *next;
};

/* The requests to one host (and port): those handed to curl, at most
 * HTTP_MAX_HOST_CONNECTIONS, and those waiting for one of them to end. */
struct http_host {
        char *key;                    /* "host:port" as in the URL */
        size_t active;
        struct http_transfer *waiting_head, *waiting_tail; /* FIFO */
        struct http_host *next;
};

struct http_transfer {
        struct http_client *client;
        struct http_host *host;
        bool waiting;                 /* in host's FIFO, not yet handed to curl */
        struct http_transfer *w_next; /* host FIFO */
        CURL *easy;
        struct curl_slist *headers;
        char *body;                   /* our copy of the request body (never NULL for body methods) */
        struct http_response response;
        size_t response_alloc;        /* bytes allocated for response.body */
        size_t max_response;          /* cap on the response body */
        bool too_big;                 /* the write callback refused data past the cap */
        bool sensitive;               /* the body is a secret: one buffer, wiped when freed */
        bool oom;                     /* a callback ran out of memory */
        http_callback_t cb;
        void *userdata;
        char errbuf[CURL_ERROR_SIZE];
        struct http_transfer *prev, *next;
};

struct http_client {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;       /* curl's timeout, CLOCK_MONOTONIC, off when curl wants none */
        char *ca_file;                /* CA bundle replacing the system store, or NULL */
        struct http_transfer *transfers; /* in flight */
        size_t n_transfers;
        struct http_socket *sockets;  /* watched sockets */
        struct http_host *hosts;
        struct dispatch dispatch;          /* callbacks may free the client: see dispatch.h */
};

#define LIST_PREPEND(head, item)                \
        do {                                    \
                (item)->prev = NULL;            \
                (item)->next = (head);          \
                if (head)                       \
                        (head)->prev = (item);  \
                (head) = (item);                \
        } while (0)
#define LIST_REMOVE(head, item)                         \
        do {                                            \
                if ((item)->prev)                       \
                        (item)->prev->next = (item)->next; \
                else                                    \
                        (head) = (item)->next;          \
                if ((item)->next)                       \
                        (item)->next->prev = (item)->prev; \
                (item)->prev = (item)->next = NULL;     \
        } while (0)

static bool curl_initialized = false;

static int curl_init_once(void) {
        if (!curl_initialized) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                curl_initialized = true;
        }
        return 0;
}

void http_response_clear(struct http_response *r) {
        if (!r)
                return;
        free(r->body);
        free(r->request_id);
        free(r->error_type);
        free(r->retry_after);
        *r = (struct http_response){};
}

static void http_socket_free(struct http_socket *s) {
        if (!s)
                return;
        LIST_REMOVE(s->client->sockets, s);
        sd_event_source_disable_unref(s->source);
        free(s);
}

void http_response_clear_sensitive(struct http_response *r) {
        if (!r)
                return;
        if (r->body)
                explicit_bzero(r->body, r->body_len);
        http_response_clear(r);
}

static void http_transfer_free(struct http_transfer *t) {
        if (!t)
                return;
        if (t->easy)
                curl_easy_cleanup(t->easy);
        curl_slist_free_all(t->headers);
        free(t->body);
        if (t->sensitive && t->response.body)
                explicit_bzero(t->response.body, t->response_alloc);
        http_response_clear(&t->response);
        free(t);
}

static void host_waiting_remove(struct http_host *h, struct http_transfer *t) {
        struct http_transfer **p = &h->waiting_head, *prev = NULL;
        for (; *p; prev = *p, p = &(*p)->w_next)
                if (*p == t) {
                        *p = t->w_next;
                        if (h->waiting_tail == t)
                                h->waiting_tail = prev;
                        t->w_next = NULL;
                        return;
                }
}

/* Hands t to curl. A failure is returned to http_submit()'s caller, or,
 * for a request that waited, ends it with an error through its callback. */
static CURLMcode http_transfer_start(struct http_transfer *t) {
        CURLMcode mc = curl_multi_add_handle(t->client->multi, t->easy);
        if (mc == CURLM_OK) {
                t->waiting = false;
                t->host->active++;
        }
        return mc;
}

static void http_transfer_complete(struct http_transfer *t, CURLcode code);

/* A connection to h is free: the requests waiting for it go to curl, in
 * the order they came. */
static void host_admit(struct http_client *c, struct http_host *h) {
        while (h->active < (size_t) HTTP_MAX_HOST_CONNECTIONS && h->waiting_head && !c->dispatch.freeing) {
                struct http_transfer *t = h->waiting_head;
                h->waiting_head = t->w_next;
                if (!h->waiting_head)
                        h->waiting_tail = NULL;
                t->w_next = NULL;
                if (http_transfer_start(t) != CURLM_OK) {
                        /* never reached curl: detach it as a waiting one */
                        http_transfer_complete(t, CURLE_OUT_OF_MEMORY); /* runs its callback */
                }
        }
}

/* Detaches t from the client, its host and curl (no callback). */
static void http_transfer_detach(struct http_transfer *t) {
        struct http_client *c = t->client;
        LIST_REMOVE(c->transfers, t);
        if (c->n_transfers > 0)
                c->n_transfers--;
        if (t->waiting) {
                host_waiting_remove(t->host, t);
                t->waiting = false;
        } else if (t->host) {
                curl_multi_remove_handle(c->multi, t->easy);
                if (t->host->active > 0)
                        t->host->active--;
        }
}

static void http_client_destroy(void *object);

static bool os_errno_is_connection(long e) {
        return e == ECONNRESET || e == EPIPE || e == ECONNABORTED || e == ECONNREFUSED || e == ENETUNREACH ||
               e == EHOSTUNREACH || e == ETIMEDOUT || e == ENETDOWN || e == EHOSTDOWN || e == ENOTCONN;
}

/* http.h's contract: CURLcode -> negative errno. */
static int http_transfer_errno(const struct http_transfer *t, CURLcode code) {
        long os_errno = 0;

        (void) curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);

        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_WRITE_ERROR:
                return t->too_big ? -EFBIG : t->oom ? -ENOMEM : -EIO;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return os_errno_is_connection(os_errno) ? -(int) os_errno : -ECONNREFUSED;
        case CURLE_SEND_ERROR:
                return os_errno_is_connection(os_errno) ? -(int) os_errno : -EPIPE;
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                return -ECONNRESET;
        case CURLE_SSL_CONNECT_ERROR:
                /* A peer that vanishes mid-handshake is a dropped
                 * connection, not a TLS policy failure. */
                if (os_errno_is_connection(os_errno))
                        return -(int) os_errno;
                return -EPROTO;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
        case CURLE_SSL_SHUTDOWN_FAILED:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ENGINE_NOTFOUND:
        case CURLE_SSL_ENGINE_SETFAILED:
        case CURLE_SSL_ENGINE_INITFAILED:
        case CURLE_SSL_CLIENTCERT:
        case CURLE_USE_SSL_FAILED:
                return -EPROTO;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EPROTONOSUPPORT;
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        default:
                return -EIO;
        }
}

/* Runs the callback of a detached transfer, then frees it. */
static void http_transfer_deliver(struct http_transfer *t, int r, const char *error_text) {
        struct http_response resp = t->response;

        /* The callback is promised a NUL-terminated body. */
        if (!resp.body)
                resp.body = (char *) "";
        t->cb(r, &resp, error_text, t->userdata);
        http_transfer_free(t);
}

static void http_transfer_complete(struct http_transfer *t, CURLcode code) {
        struct http_host *h = t->host;
        long status = 0;
        int r;

        r = http_transfer_errno(t, code);
        if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
                t->response.status = status;
        http_transfer_detach(t);
        /* The next request to the host starts before this callback runs,
         * so that whatever the callback submits queues behind it. */
        host_admit(t->client, h);

        const char *error_text = NULL;
        if (r < 0)
                error_text = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
        http_transfer_deliver(t, r, error_text);
}

static void http_client_process_done(struct http_client *c) {
        CURLMsg *m;
        int left;

        while (!c->dispatch.freeing && (m = curl_multi_info_read(c->multi, &left))) {
                struct http_transfer *t = NULL;
                CURLcode code;

                if (m->msg != CURLMSG_DONE)
                        continue;
                /* m is invalid once the handle is removed: copy first. */
                code = m->data.result;
                if (curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &t) != CURLE_OK || !t)
                        continue;
                http_transfer_complete(t, code);
        }
}

static int io_cb(_unused_ sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        struct http_socket *s = userdata;
        struct http_client *c = s->client; /* s may be freed inside curl_multi_socket_action() */
        int mask = 0, running = 0;

        if (revents & EPOLLIN)
                mask |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                mask |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                mask |= CURL_CSELECT_ERR;

        dispatch_begin(&c->dispatch);
        curl_multi_socket_action(c->multi, fd, mask, &running);
        http_client_process_done(c);
        dispatch_end(&c->dispatch);
        return 0;
}

static int timer_cb(_unused_ sd_event_source *src, _unused_ uint64_t usec, void *userdata) {
        struct http_client *c = userdata;
        int running = 0;

        dispatch_begin(&c->dispatch);
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        http_client_process_done(c);
        dispatch_end(&c->dispatch);
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int socket_function(_unused_ CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        struct http_client *c = userp;
        struct http_socket *s = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (s) {
                        curl_multi_assign(c->multi, fd, NULL);
                        http_socket_free(s);
                }
                return 0;
        }

        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (s) {
                r = sd_event_source_set_io_events(s->source, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s->source, SD_EVENT_ON);
                return r < 0 ? -1 : 0;
        }

        /* A socket curl closed without telling us leaves a stale source on
         * the same number; drop it before watching the new socket. */
        for (struct http_socket *i = c->sockets, *next; i; i = next) {
                next = i->next;
                if (i->fd == fd)
                        http_socket_free(i);
        }

        s = calloc(1, sizeof(*s));
        if (!s)
                return -1;
        s->client = c;
        s->fd = fd;
        r = sd_event_add_io(c->event, &s->source, fd, events, io_cb, s);
        if (r < 0) {
                free(s);
                return -1;
        }
        (void) sd_event_source_set_description(s->source, "http-socket");
        LIST_PREPEND(c->sockets, s);
        if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
                http_socket_free(s);
                return -1;
        }
        return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants socket_action(TIMEOUT) after
 * timeout_ms (-1: never). Never call curl back from here. */
static int timer_function(_unused_ CURLM *multi, long timeout_ms, void *userp) {
        struct http_client *c = userp;
        struct timespec ts;
        usec_t now;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
        if (sd_event_source_set_time(c->timer, now + (usec_t) timeout_ms * USEC_PER_MSEC) < 0)
                return -1;
        return sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct http_transfer *t = userdata;
        size_t n = size * nmemb;

        if (n == 0)
                return 0;
        /* CURLOPT_MAXFILESIZE only catches a Content-Length announced up
         * front; chunked or close-delimited bodies are capped here. */
        if (n > t->max_response - t->response.body_len) {
                t->too_big = true;
                return 0;
        }
        if (t->response.body_len + n + 1 > t->response_alloc) {
                size_t want = MAX(t->response_alloc * 2, t->response.body_len + n + 1);
                want = MAX(want, (size_t) 4096);
                want = MIN(want, t->max_response + 1);
                char *b = realloc(t->response.body, want);
                if (!b) {
                        t->oom = true;
                        return 0;
                }
                t->response.body = b;
                t->response_alloc = want;
        }
        memcpy(t->response.body + t->response.body_len, ptr, n);
        t->response.body_len += n;
        t->response.body[t->response.body_len] = 0;
        return n;
}

static bool header_is(const char *line, size_t name_len, const char *name) {
        return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct http_transfer *t = userdata;
        size_t n = size * nmemb;
        const char *colon, *v, *end;
        char **field = NULL;

        /* A new status line (after "100 Continue" or any interim
         * response): what we captured belongs to a previous response. */
        if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
                t->response.request_id = mfree(t->response.request_id);
                t->response.error_type = mfree(t->response.error_type);
                t->response.retry_after = mfree(t->response.retry_after);
                return n;
        }

        colon = memchr(ptr, ':', n);
        if (!colon)
                return n;
        size_t name_len = (size_t) (colon - ptr);
        if (header_is(ptr, name_len, "x-amzn-RequestId"))
                field = &t->response.request_id;
        else if (header_is(ptr, name_len, "x-amzn-ErrorType"))
                field = &t->response.error_type;
        else if (header_is(ptr, name_len, "x-amz-retry-after"))
                field = &t->response.retry_after;
        else
                return n;

        v = colon + 1;
        end = ptr + n;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
                end--;

        char *copy = strndup(v, (size_t) (end - v));
        if (!copy) {
                t->oom = true;
                return 0;
        }
        free(*field);
        *field = copy;
        return n;
}

static bool string_has_crlf(const char *s) {
        return strpbrk(s, "\r\n") != NULL;
}

static bool method_is_valid(const char *m) {
        if (isempty(m))
                return false;
        for (const char *p = m; *p; p++)
                if (*p < 'A' || *p > 'Z')
                        return false;
        return true;
}

static bool http_request_is_valid(const struct http_request *req) {
        if (!req || isempty(req->url) || !method_is_valid(req->method))
                return false;
        if (req->body_len > 0 && !req->body)
                return false;
        if (string_has_crlf(req->url))
                return false;
        for (char *const *h = req->headers; h && *h; h++)
                if (string_has_crlf(*h))
                        return false; /* no header injection */
        return true;
}

static bool headers_have(char *const *headers, const char *name) {
        size_t l = strlen(name);
        for (char *const *h = headers; h && *h; h++)
                if (strncasecmp(*h, name, l) == 0 && (*h)[l] == ':')
                        return true;
        return false;
}

#define SETOPT(easy, opt, val)                                        \
        do {                                                          \
                CURLcode _cc_ = curl_easy_setopt((easy), (opt), (val)); \
                if (_cc_ != CURLE_OK)                                 \
                        return _cc_ == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL; \
        } while (0)

/* The one place that configures a libcurl easy handle, for the requests of
 * the multi handle and the blocking ones alike: protocols, no redirects,
 * timeouts, TLS verification and CA bundle, size cap, headers, method. */
static int http_transfer_setup(struct http_transfer *t, const struct http_request *req, const char *ca_file) {
        CURL *e = t->easy;
        usec_t connect_timeout = req->connect_timeout_usec ?: HTTP_DEFAULT_CONNECT_TIMEOUT_USEC;
        usec_t timeout = req->timeout_usec ?: HTTP_DEFAULT_TIMEOUT_USEC;

        t->max_response = MIN(req->max_response_bytes ?: HTTP_DEFAULT_MAX_RESPONSE, HTTP_MAX_RESPONSE_LIMIT);
        if (req->sensitive) {
                /* All of it at once: growing it would leave copies of the
                 * secret in freed memory. */
                t->sensitive = true;
                t->response.body = malloc(t->max_response + 1);
                if (!t->response.body)
                        return -ENOMEM;
                t->response.body[0] = 0;
                t->response_alloc = t->max_response + 1;
        }

        SETOPT(e, CURLOPT_PRIVATE, t);
        SETOPT(e, CURLOPT_URL, req->url);
        SETOPT(e, CURLOPT_PROTOCOLS_STR, req->allow_plain_http ? "http,https" : "https");
        SETOPT(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
        if (req->no_proxy)
                SETOPT(e, CURLOPT_NOPROXY, "*");
        SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L);
        SETOPT(e, CURLOPT_NOSIGNAL, 1L);
        SETOPT(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
        SETOPT(e, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, (long) MAX(connect_timeout / USEC_PER_MSEC, (usec_t) 1));
        SETOPT(e, CURLOPT_TIMEOUT_MS, (long) MAX(timeout / USEC_PER_MSEC, (usec_t) 1));
        /* TLS is always verified: there is no switch to turn it off. */
        SETOPT(e, CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (!isempty(ca_file)) {
                /* Instead of the system store, as the AWS SDKs treat
                 * AWS_CA_BUNDLE: no CA directory either. */
                SETOPT(e, CURLOPT_CAINFO, ca_file);
                SETOPT(e, CURLOPT_CAPATH, (char *) NULL);
        }
        SETOPT(e, CURLOPT_USERAGENT, HTTP_USER_AGENT);
        SETOPT(e, CURLOPT_ERRORBUFFER, t->errbuf);
        SETOPT(e, CURLOPT_WRITEFUNCTION, write_cb);
        SETOPT(e, CURLOPT_WRITEDATA, t);
        SETOPT(e, CURLOPT_HEADERFUNCTION, header_cb);
        SETOPT(e, CURLOPT_HEADERDATA, t);
        SETOPT(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t->max_response);

        if (streq(req->method, "GET"))
                SETOPT(e, CURLOPT_HTTPGET, 1L);
        else if (streq(req->method, "HEAD"))
                SETOPT(e, CURLOPT_NOBODY, 1L);
        else {
                /* Every other method goes out with a body, possibly empty,
                 * so that a bodiless DELETE still says Content-Length: 0 as
                 * the SDKs send it. */
                t->body = malloc(req->body_len + 1);
                if (!t->body)
                        return -ENOMEM;
                if (req->body_len > 0)
                        memcpy(t->body, req->body, req->body_len);
                t->body[req->body_len] = 0;
                if (!streq(req->method, "POST"))
                        SETOPT(e, CURLOPT_CUSTOMREQUEST, req->method);
                SETOPT(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
                SETOPT(e, CURLOPT_POSTFIELDS, t->body);
        }

        for (char *const *h = req->headers; h && *h; h++) {
                struct curl_slist *l = curl_slist_append(t->headers, *h);
                if (!l)
                        return -ENOMEM;
                t->headers = l;
        }
        /* No "Expect: 100-continue" round trip, and no form content type
         * that curl would invent for a body the caller did not type. */
        static const char *const suppress[] = { "Expect:", "Content-Type:", "Accept:" };
        static const char *const suppress_name[] = { "Expect", "Content-Type", "Accept" };
        for (size_t i = 0; i < ELEMENTSOF(suppress); i++) {
                if (headers_have(req->headers, suppress_name[i]))
                        continue;
                struct curl_slist *l = curl_slist_append(t->headers, suppress[i]);
                if (!l)
                        return -ENOMEM;
                t->headers = l;
        }
        SETOPT(e, CURLOPT_HTTPHEADER, t->headers);
        return 0;
}

/* The host a URL names ("host:port" as written, or "host"), found or
 * added; NULL on OOM. */
static struct http_host *http_host_get(struct http_client *c, const char *url) {
        const char *a = strstr(url, "://");
        size_t n;

        a = a ? a + 3 : url;
        n = strcspn(a, "/?#");
        for (struct http_host *h = c->hosts; h; h = h->next)
                if (strlen(h->key) == n && strncasecmp(h->key, a, n) == 0)
                        return h;
        struct http_host *h = calloc(1, sizeof(*h));
        if (!h)
                return NULL;
        h->key = strndup(a, n);
        if (!h->key) {
                free(h);
                return NULL;
        }
        h->next = c->hosts;
        c->hosts = h;
        return h;
}

/* A transfer with its easy handle set up for req, not yet handed to curl. */
static int http_transfer_new(const struct http_request *req, const char *ca_file, struct http_transfer **ret) {
        struct http_transfer *t = calloc(1, sizeof(*t));
        int r;

        if (!t)
                return -ENOMEM;
        t->easy = curl_easy_init();
        r = t->easy ? http_transfer_setup(t, req, ca_file) : -ENOMEM;
        if (r < 0) {
                http_transfer_free(t);
                return r;
        }
        *ret = t;
        return 0;
}

int http_submit(struct http_client *c, const struct http_request *req, http_callback_t cb, void *userdata) {
        struct http_transfer *t;
        int r;

        if (!c || !cb || !http_request_is_valid(req))
                return -EINVAL;
        if (c->dispatch.freeing)
                return -ESHUTDOWN;

        r = http_transfer_new(req, c->ca_file, &t);
        if (r < 0)
                return r;
        t->client = c;
        t->cb = cb;
        t->userdata = userdata;

        t->host = http_host_get(c, req->url);
        if (!t->host) {
                http_transfer_free(t);
                return -ENOMEM;
        }
        if (t->host->active < (size_t) HTTP_MAX_HOST_CONNECTIONS) {
                /* Adding only registers the handle: curl asks for a 0 ms
                 * timer and the transfer starts, and completes, from the
                 * event loop. */
                CURLMcode mc = http_transfer_start(t);
                if (mc != CURLM_OK) {
                        http_transfer_free(t);
                        return mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
                }
        } else {
                t->waiting = true;
                if (t->host->waiting_tail)
                        t->host->waiting_tail->w_next = t;
                else
                        t->host->waiting_head = t;
                t->host->waiting_tail = t;
        }
        LIST_PREPEND(c->transfers, t);
        c->n_transfers++;
        return 0;
}

size_t http_client_in_flight(const struct http_client *c) {
        return c ? c->n_transfers : 0;
}

void http_client_cancel_all(struct http_client *c) {
        struct http_transfer *list, *t;

        if (!c)
                return;

        dispatch_begin(&c->dispatch);
        /* Take the whole list first: requests submitted by the callbacks
         * below are new and stay. */
        list = c->transfers;
        c->transfers = NULL;
        c->n_transfers = 0;
        for (t = list; t; t = t->next) {
                if (t->waiting) {
                        host_waiting_remove(t->host, t);
                        t->waiting = false;
                } else {
                        curl_multi_remove_handle(c->multi, t->easy);
                        if (t->host->active > 0)
                                t->host->active--;
                }
                t->host = NULL; /* detached from everything */
        }

        while ((t = list)) {
                list = t->next;
                if (c->dispatch.freeing) {
                        /* A callback freed the client: no more callbacks. */
                        http_transfer_free(t);
                        continue;
                }
                http_transfer_deliver(t, -ECANCELED, "request cancelled");
        }
        dispatch_end(&c->dispatch);
}

static void http_client_destroy(void *object) {
        struct http_client *c = object;
        struct http_transfer *t;

        /* Nothing should be left (free cancels first), but never leak. */
        while ((t = c->transfers)) {
                http_transfer_detach(t);
                http_transfer_free(t);
        }
        if (c->multi) {
                /* No more socket/timer callbacks into a dying client; the
                 * sockets curl still holds are released below. */
                curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, NULL);
                curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, NULL);
                curl_multi_cleanup(c->multi);
        }
        while (c->sockets)
                http_socket_free(c->sockets);
        while (c->hosts) {
                struct http_host *h = c->hosts;
                c->hosts = h->next;
                free(h->key);
                free(h);
        }
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        free(c->ca_file);
        free(c);
}

struct http_client *http_client_free(struct http_client *c) {
        struct http_transfer *t;

        if (!c || !dispatch_mark_freeing(&c->dispatch))
                return NULL;
        /* Requests in flight are dropped without their callbacks: their
         * userdata may already be gone (a destructor must not call back
         * into objects that are being torn down). */
        while ((t = c->transfers)) {
                http_transfer_detach(t);
                http_transfer_free(t);
        }
        if (dispatch_idle(&c->dispatch))
                http_client_destroy(c);
        /* else: destroyed when the outermost callback returns */
        return NULL;
}

int http_client_set_ca_file(struct http_client *c, const char *ca_file) {
        if (!c)
                return -EINVAL;
        if (!isempty(ca_file)) {
                /* OpenSSL reads the bundle with a blocking open: a FIFO or a
                 * device there would hang every call. Only a regular file. */
                _cleanup_(closep) int fd = -EBADF;
                int r = open_regular_file(ca_file, &fd);
                if (r < 0)
                        return r;
        }
        return free_and_strdup(&c->ca_file, isempty(ca_file) ? NULL : ca_file);
}

int http_client_new(sd_event *event, const char *ca_file, struct http_client **ret) {
        struct http_client *c;
        int r;

        if (!event || !ret)
                return -EINVAL;

        r = curl_init_once();
        if (r < 0)
                return r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        dispatch_init(&c->dispatch, http_client_destroy, c);

        r = http_client_set_ca_file(c, ca_file);
        if (r < 0)
                goto fail;

        r = sd_event_add_time(event, &c->timer, CLOCK_MONOTONIC, USEC_INFINITY, USEC_PER_MSEC, timer_cb, c);
        if (r < 0)
                goto fail;
        (void) sd_event_source_set_description(c->timer, "http-curl-timer");
        r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;

        r = -ENOMEM;
        c->multi = curl_multi_init();
        if (!c->multi)
                goto fail;
        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_function) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_function) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, HTTP_MAX_HOST_CONNECTIONS) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, HTTP_MAX_CACHED_CONNECTIONS) != CURLM_OK) {
                r = -EIO;
                goto fail;
        }

        *ret = c;
        return 0;

fail:
        http_client_destroy(c);
        return r;
}

static char *default_ca_file;

int http_set_default_ca_file(const char *ca_file) {
        if (isempty(ca_file)) {
                default_ca_file = mfree(default_ca_file);
                return 0;
        }
        return free_and_strdup(&default_ca_file, ca_file);
}

const char *http_default_ca_file(void) {
        if (default_ca_file)
                return default_ca_file;
        const char *e = getenv("AWS_CA_BUNDLE");
        return isempty(e) ? NULL : e;
}

int http_perform(const struct http_request *req, const char *ca_file, struct http_response *ret,
                 char **ret_error_text) {
        struct http_transfer *t;
        long status = 0;
        int r;

        if (!ret || !http_request_is_valid(req))
                return -EINVAL;
        r = curl_init_once();
        if (r < 0)
                return r;

        r = http_transfer_new(req, ca_file, &t);
        if (r < 0)
                return r;

        /* Blocking, bounded by the request's timeouts. */
        CURLcode cc = curl_easy_perform(t->easy);
        r = http_transfer_errno(t, cc);
        if (r < 0) {
                if (ret_error_text)
                        *ret_error_text = strdup(t->errbuf[0] ? t->errbuf : curl_easy_strerror(cc));
                http_transfer_free(t);
                return r;
        }
        (void) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        t->response.status = status;
        if (!t->response.body) {
                t->response.body = strdup("");
                if (!t->response.body) {
                        http_transfer_free(t);
                        return -ENOMEM;
                }
        }
        *ret = t->response;
        t->response = (struct http_response){};
        http_transfer_free(t);
        return 0;
}
