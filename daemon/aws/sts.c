/* sts.c: AssumeRole and AssumeRoleWithWebIdentity in the Query protocol.
 * The request is a form body (Action, Version, then the members); the
 * answer is XML. The XML reader only looks for the few elements it needs
 * (Credentials/AccessKeyId, SecretAccessKey, SessionToken, Expiration;
 * Error/Code, Error/Message) inside a body bounded by
 * STS_RESPONSE_MAX_BYTES, decodes the five predefined entities and numeric
 * character references of ASCII, and refuses anything else: no DTD, no
 * external entities, no recursion. Never logs; never puts a secret in a
 * message (only the role ARN, the STS code and message). */
#include "sts.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "credentials.h"
#include "http.h"

#define STS_CONNECT_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define STS_TIMEOUT_USEC (15 * USEC_PER_SEC)
/* Messages from STS are echoed in our logs: bounded and printable. */
#define STS_MESSAGE_MAX 300

static bool append(char **buf, size_t *len, const char *s) {
        size_t n = strlen(s);
        char *b = realloc(*buf, *len + n + 1);
        if (!b)
                return false;
        memcpy(b + *len, s, n + 1);
        *buf = b;
        *len += n;
        return true;
}

/* name=VALUE, percent-encoded, appended with a leading '&'. The old
 * buffer is wiped when it grows: it may hold the token already. */
static int append_param(char **buf, size_t *len, const char *name, const char *value) {
        _cleanup_(free_cleanse_strp) char *enc = aws_uri_encode(value, false);
        if (!enc)
                return -ENOMEM;
        size_t need = *len + 1 + strlen(name) + 1 + strlen(enc) + 1;
        char *b = malloc(need);
        if (!b)
                return -ENOMEM;
        int k = snprintf(b, need, "%s&%s=%s", *buf, name, enc);
        if (k < 0 || (size_t) k >= need) {
                free_cleanse_str(b);
                return -EINVAL;
        }
        free_cleanse_str(*buf);
        *buf = b;
        *len = (size_t) k;
        return 0;
}

int sts_request_body(const struct sts_assume_role *a, char **ret) {
        char *body = NULL;
        size_t len = 0;
        int r;

        if (!a || !ret || isempty(a->role_arn) || isempty(a->role_session_name))
                return -EINVAL;
        if (!append(&body, &len, a->web_identity_token ? "Action=AssumeRoleWithWebIdentity" : "Action=AssumeRole") ||
            !append(&body, &len, "&Version=" STS_API_VERSION)) {
                free(body);
                return -ENOMEM;
        }
        /* members in the order of the model's AssumeRoleRequest and
         * AssumeRoleWithWebIdentityRequest shapes */
        r = append_param(&body, &len, "RoleArn", a->role_arn);
        if (r >= 0)
                r = append_param(&body, &len, "RoleSessionName", a->role_session_name);
        if (r >= 0 && a->web_identity_token)
                r = append_param(&body, &len, "WebIdentityToken", a->web_identity_token);
        if (r >= 0 && a->duration_sec > 0) {
                char d[16];
                snprintf(d, sizeof d, "%u", a->duration_sec);
                r = append_param(&body, &len, "DurationSeconds", d);
        }
        if (r >= 0 && a->external_id && !a->web_identity_token)
                r = append_param(&body, &len, "ExternalId", a->external_id);
        if (r < 0) {
                free_cleanse_str(body);
                return r;
        }
        *ret = body;
        return 0;
}

int sts_endpoint(const char *region, char **ret) {
        const char *e = getenv("AWS_ENDPOINT_URL_STS");
        if (isempty(e))
                e = getenv("AWS_ENDPOINT_URL");
        char *s;
        if (!isempty(e)) {
                if (strncasecmp(e, "https://", 8) != 0)
                        return -EPROTONOSUPPORT;
                for (const char *p = e; *p; p++)
                        if ((unsigned char) *p <= ' ' || *p == 0x7f)
                                return -EINVAL;
                s = strdup(e);
        } else {
                if (isempty(region) || strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region))
                        return -EINVAL;
                s = strprintf("https://sts.%s.amazonaws.com", region);
        }
        if (!s)
                return -ENOMEM;
        for (size_t n = strlen(s); n > 8 && s[n - 1] == '/'; n--)
                s[n - 1] = 0;
        *ret = s;
        return 0;
}

/* ---- the XML reader ---- */

/* The text of the first <name>...</name> inside [p, end), raw (entities
 * not decoded yet); NULL when absent. An element with attributes or a
 * self-closing one does not count: STS sends neither for these. */
static const char *xml_find(const char *p, const char *end, const char *name, size_t *ret_len) {
        size_t nl = strlen(name);
        while (p < end) {
                const char *lt = memchr(p, '<', (size_t) (end - p));
                if (!lt || (size_t) (end - lt) < nl + 2)
                        return NULL;
                if (memcmp(lt + 1, name, nl) == 0 && lt[1 + nl] == '>') {
                        const char *start = lt + nl + 2;
                        for (const char *q = start; q < end; q++) {
                                q = memchr(q, '<', (size_t) (end - q));
                                if (!q)
                                        return NULL;
                                if ((size_t) (end - q) >= nl + 3 && q[1] == '/' && memcmp(q + 2, name, nl) == 0 &&
                                    q[2 + nl] == '>') {
                                        *ret_len = (size_t) (q - start);
                                        return start;
                                }
                        }
                        return NULL;
                }
                p = lt + 1;
        }
        return NULL;
}

/* Decodes text without markup: the predefined entities and &#N; / &#xN;
 * of printable ASCII. Control characters, markup and anything else are
 * refused (-EBADMSG): these values go into headers and logs. */
static int xml_text(const char *s, size_t n, char **ret) {
        /* Zeroed: always terminated, so free_cleanse_str() may take its strlen on any early return. */
        _cleanup_(free_cleanse_strp) char *out = calloc(n + 1, 1);
        size_t k = 0;
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char) s[i];
                if (c == '<' || c == '>' || c < 0x20 || c == 0x7f) {
                        if (c == '\n' || c == '\r' || c == '\t') {
                                out[k++] = ' ';
                                i++;
                                continue;
                        }
                        return -EBADMSG;
                }
                if (c != '&') {
                        out[k++] = (char) c;
                        i++;
                        continue;
                }
                const char *semi = memchr(s + i, ';', MIN(n - i, (size_t) 8));
                if (!semi)
                        return -EBADMSG;
                size_t el = (size_t) (semi - (s + i)) + 1;
                static const struct {
                        const char *name;
                        char c;
                } ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' } };
                bool done = false;
                for (size_t e = 0; e < ELEMENTSOF(ents) && !done; e++)
                        if (el == strlen(ents[e].name) && memcmp(s + i, ents[e].name, el) == 0) {
                                out[k++] = ents[e].c;
                                done = true;
                        }
                if (!done && el > 3 && s[i + 1] == '#') {
                        unsigned long v = 0;
                        bool hex = s[i + 2] == 'x' || s[i + 2] == 'X';
                        size_t d = i + (hex ? 3 : 2);
                        if (d >= i + el - 1)
                                return -EBADMSG;
                        for (; d < i + el - 1; d++) {
                                char h = s[d];
                                int dv = h >= '0' && h <= '9'                ? h - '0'
                                         : hex && h >= 'a' && h <= 'f'       ? h - 'a' + 10
                                         : hex && h >= 'A' && h <= 'F'       ? h - 'A' + 10
                                                                             : -1;
                                if (dv < 0)
                                        return -EBADMSG;
                                v = v * (hex ? 16 : 10) + (unsigned long) dv;
                        }
                        if (v < 0x20 || v >= 0x7f)
                                return -EBADMSG;
                        out[k++] = (char) v;
                        done = true;
                }
                if (!done)
                        return -EBADMSG;
                i += el;
        }
        out[k] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

static int xml_value(const char *p, const char *end, const char *name, char **ret) {
        size_t n;
        const char *v = xml_find(p, end, name, &n);
        if (!v) {
                *ret = NULL;
                return 0;
        }
        return xml_text(v, n, ret);
}

static bool xml_ok(const char *xml, size_t len) {
        /* No DTD (and so no entity declarations) and no NUL byte. */
        return xml && !memchr(xml, 0, len) && !memmem(xml, len, "<!DOCTYPE", 9) && !memmem(xml, len, "<!ENTITY", 8);
}

int sts_parse_credentials(const char *xml, size_t len, struct aws_credentials **ret) {
        _cleanup_(free_cleanse_strp) char *akid = NULL, *secret = NULL, *token = NULL, *exp = NULL;
        size_t n;
        uint64_t expiration;
        int r;

        if (!ret || len > STS_RESPONSE_MAX_BYTES || !xml_ok(xml, len))
                return -EBADMSG;
        const char *end = xml + len;
        const char *res = xml_find(xml, end, "AssumeRoleResult", &n);
        if (!res)
                res = xml_find(xml, end, "AssumeRoleWithWebIdentityResult", &n);
        if (!res)
                return -EBADMSG;
        const char *cred = xml_find(res, res + n, "Credentials", &n);
        if (!cred)
                return -EBADMSG;
        end = cred + n;
        if ((r = xml_value(cred, end, "AccessKeyId", &akid)) < 0 ||
            (r = xml_value(cred, end, "SecretAccessKey", &secret)) < 0 ||
            (r = xml_value(cred, end, "SessionToken", &token)) < 0 || (r = xml_value(cred, end, "Expiration", &exp)) < 0)
                return r == -ENOMEM ? r : -EBADMSG;
        if (isempty(akid) || isempty(secret) || isempty(token) || !exp ||
            credentials_parse_iso8601(exp, &expiration) < 0)
                return -EBADMSG;
        r = credentials_new(akid, secret, token, expiration, NULL, ret);
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

static char *sanitize(char *s) {
        if (!s)
                return NULL;
        size_t k = 0;
        for (size_t i = 0; s[i] && k < STS_MESSAGE_MAX; i++)
                s[k++] = (unsigned char) s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        s[k] = 0;
        return s;
}

int sts_parse_error(const char *xml, size_t len, char **ret_code, char **ret_message) {
        _cleanup_(freep) char *code = NULL, *message = NULL;
        size_t n;
        if (!ret_code || !ret_message || len > STS_RESPONSE_MAX_BYTES || !xml_ok(xml, len))
                return -EBADMSG;
        const char *err = xml_find(xml, xml + len, "Error", &n);
        if (!err)
                return -EBADMSG;
        if (xml_value(err, err + n, "Code", &code) < 0)
                code = NULL;
        if (xml_value(err, err + n, "Message", &message) < 0)
                message = NULL;
        /* a code is a word: anything else is not one */
        if (code && (isempty(code) || strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.") !=
                                               strlen(code) || strlen(code) > 128))
                code = mfree(code);
        *ret_code = TAKE_PTR(code);
        *ret_message = sanitize(TAKE_PTR(message));
        return 0;
}

/* ---- the call ---- */



static void header_lines_wipe(char **l) {
        for (size_t i = 0; l[i]; i++)
                free_cleanse_str(l[i]);
}

int sts_call(const char *endpoint, const char *region, const struct sts_assume_role *a,
             const struct aws_credentials *caller, uint64_t now, struct aws_credentials **ret, char **ret_code,
             char **ret_error) {
        _cleanup_(free_cleanse_strp) char *body = NULL;
        _cleanup_(freep) char *host = NULL, *url = NULL, *error_text = NULL, *code = NULL, *message = NULL;
        _cleanup_(sigv4_signature_clear) struct sigv4_signature sig = {};
        _cleanup_(http_response_clear_sensitive) struct http_response resp = {};
        char *lines[7] = {};
        size_t n = 0;
        int r;

        if (!endpoint || !region || !a || !ret || !ret_code || !ret_error || (!caller && !a->web_identity_token))
                return -EINVAL;
        *ret_code = NULL;
        r = sts_request_body(a, &body);
        if (r < 0)
                return r;
        if (strncasecmp(endpoint, "https://", 8) != 0) {
                set_message(ret_error, "STS endpoint %s is not https", endpoint);
                return -EPROTONOSUPPORT;
        }
        const char *h = endpoint + 8;
        host = strndup(h, strcspn(h, "/?#"));
        url = strprintf("%s/", endpoint);
        if (!host || !url)
                return -ENOMEM;

        static const char content_type[] = "application/x-www-form-urlencoded; charset=utf-8";
        lines[n++] = strprintf("Host: %s", host);
        lines[n++] = strprintf("Content-Type: %s", content_type);
        if (caller) {
                /* AssumeRole is signed with the caller's credentials; the
                 * web identity call is not (its token is the proof). */
                struct sigv4_header sh[] = { { "host", host }, { "content-type", content_type } };
                struct sigv4_request sreq = {
                        .method = "POST", .path = "/", .headers = sh, .n_headers = 2,
                        .body = body, .body_len = strlen(body),
                };
                r = sigv4_sign(&sreq, caller, region, "sts", now, true, &sig);
                if (r < 0) {
                        header_lines_wipe(lines);
                        return r;
                }
                lines[n++] = strprintf("X-Amz-Date: %s", sig.amz_date);
                if (caller->session_token)
                        lines[n++] = strprintf("X-Amz-Security-Token: %s", caller->session_token);
                lines[n++] = strprintf("Authorization: %s", sig.authorization);
        }
        for (size_t i = 0; i < n; i++)
                if (!lines[i]) {
                        header_lines_wipe(lines);
                        return -ENOMEM;
                }

        struct http_request req = {
                .method = "POST",
                .url = url,
                .headers = lines,
                .body = body,
                .body_len = strlen(body),
                .connect_timeout_usec = STS_CONNECT_TIMEOUT_USEC,
                .timeout_usec = STS_TIMEOUT_USEC,
                .max_response_bytes = STS_RESPONSE_MAX_BYTES,
                .sensitive = true,
        };
        r = http_perform(&req, http_default_ca_file(), &resp, &error_text);
        header_lines_wipe(lines);
        if (r < 0) {
                set_message(ret_error, "STS %s: %s", endpoint, error_text ? error_text : strerror(-r));
                return r == -ENOMEM ? r : r == -EFBIG ? -EBADMSG : r;
        }
        if (resp.status >= 200 && resp.status < 300) {
                r = sts_parse_credentials(resp.body, resp.body_len, ret);
                if (r < 0)
                        set_message(ret_error, "STS %s sent a malformed answer (HTTP %ld)", endpoint, resp.status);
                return r;
        }
        if (sts_parse_error(resp.body, resp.body_len, &code, &message) < 0)
                code = message = NULL;
        set_message(ret_error, "STS answered HTTP %ld%s%s%s%s", resp.status, code ? " " : "", code ? code : "",
                    message ? ": " : "", message ? message : "");
        *ret_code = TAKE_PTR(code);
        /* refusals are the caller's to judge; 5xx and throttling pass */
        return resp.status == 403 || (resp.status >= 400 && resp.status < 500 && resp.status != 429) ? -EACCES : -EIO;
}
