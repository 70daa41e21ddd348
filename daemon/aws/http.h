/* http.h: HTTPS requests through the libcurl multi interface, driven by the
 * sd-event loop (socket and timer callbacks): many requests in flight, the
 * loop never blocks. TLS is always verified. Bounded: connect and total
 * timeouts, a response size cap enforced in the write callback. */
#pragma once

#include <systemd/sd-event.h>

#include "../util.h"

struct http_client;

struct http_request {
        const char *method;            /* "GET", "POST", "PUT", "DELETE" */
        const char *url;               /* https://host[:port]/path?query */
        char *const *headers;          /* NULL-terminated "Name: value" list */
        const void *body;              /* may be NULL */
        size_t body_len;
        usec_t connect_timeout_usec;   /* 0: default 5 s */
        usec_t timeout_usec;           /* 0: default 30 s */
        size_t max_response_bytes;     /* 0: default 8 MiB */
        bool allow_plain_http;         /* http:// too: only for hosts the caller checked (loopback,
                                        * link-local metadata services) */
        bool no_proxy;                 /* never through a proxy from the environment */
        bool sensitive;                /* the response body is a secret: kept in one buffer (no stray
                                        * copies); free it with http_response_clear_sensitive() */
};

struct http_response {
        long status;                   /* HTTP status, 0 if none was received */
        char *body;                    /* NUL-terminated */
        size_t body_len;
        char *request_id;              /* x-amzn-RequestId header, or NULL */
        char *error_type;              /* x-amzn-ErrorType header, or NULL */
        char *retry_after;             /* x-amz-retry-after header, or NULL */
};

/* r: 0 when an HTTP response arrived (any status); else a negative errno:
 * -ETIMEDOUT timeout, -ECONNREFUSED/-ECONNRESET/-EPIPE connection errors,
 * -EPROTO TLS failure (certificate not verified...), -EFBIG response too
 * large, -ENOMEM. error_text: curl's one-line explanation, or NULL. */
typedef void (*http_callback_t)(int r, const struct http_response *resp, const char *error_text, void *userdata);

/* ca_file: extra CA bundle used instead of the system store, or NULL. */
int http_client_new(sd_event *event, const char *ca_file, struct http_client **ret);
/* Requests in flight are dropped without their callbacks. Safe to call
 * from inside a callback (the memory goes when it returns). */
struct http_client *http_client_free(struct http_client *c);
DEFINE_FREEP(struct http_client, http_client_free)
int http_client_set_ca_file(struct http_client *c, const char *ca_file);

/* Starts a request; cb is called exactly once from the event loop (never
 * from inside http_submit). The request is copied. On an error return
 * (-EINVAL, -ENOMEM, -ESHUTDOWN while being freed) cb is never called.
 * resp is never NULL in cb; only https:// URLs are accepted (other schemes
 * end in cb with -EPROTONOSUPPORT). */
int http_submit(struct http_client *c, const struct http_request *req, http_callback_t cb, void *userdata);
size_t http_client_in_flight(const struct http_client *c);
/* Aborts every request in flight; their callbacks get -ECANCELED. */
void http_client_cancel_all(struct http_client *c);

void http_response_clear(struct http_response *r);
/* Wipes the body before freeing it. */
void http_response_clear_sensitive(struct http_response *r);

/* The same request, blocking (bounded by its timeouts), with the same
 * handle setup as http_submit(): for the credential endpoints, which are
 * asked once in a while from inside credentials_get(). 0 when an HTTP
 * response arrived (any status; *ret filled, body NUL-terminated), else a
 * negative errno as for http_callback_t and, when ret_error_text is not
 * NULL, curl's explanation in *ret_error_text (free it). ca_file: as for
 * http_client_new(). */
int http_perform(const struct http_request *req, const char *ca_file, struct http_response *ret,
                 char **ret_error_text);
/* The CA bundle of every HTTPS call that is not Connect's (STS, container
 * credentials): the YAML's ca_file:, set here when the configuration is
 * (re)loaded, else $AWS_CA_BUNDLE, else NULL (the system's trust store). */
int http_set_default_ca_file(const char *ca_file);
const char *http_default_ca_file(void);
