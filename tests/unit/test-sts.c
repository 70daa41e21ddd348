/* test-sts.c: the STS Query requests byte for byte, the XML answers
 * (success, errors, hostile documents), the endpoint choice and when
 * assumed credentials are renewed. Pure: no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "aws/roles.h"
#include "aws/sts.h"

static void test_request_body(_unused_ void **state) {
        _cleanup_(freep) char *b = NULL, *w = NULL, *m = NULL;
        struct sts_assume_role a = {
                .role_arn = "arn:aws:iam::111122223333:role/ops/connect-numbers",
                .role_session_name = "connect-numbers",
                .external_id = "ext:1/2+3=4@x",
                .duration_sec = 3600,
        };
        assert_int_equal(sts_request_body(&a, &b), 0);
        assert_string_equal(b, "Action=AssumeRole&Version=2011-06-15"
                               "&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fops%2Fconnect-numbers"
                               "&RoleSessionName=connect-numbers&DurationSeconds=3600"
                               "&ExternalId=ext%3A1%2F2%2B3%3D4%40x");

        /* no external id, no duration: neither member is sent */
        a.external_id = NULL;
        a.duration_sec = 0;
        assert_int_equal(sts_request_body(&a, &m), 0);
        assert_string_equal(m, "Action=AssumeRole&Version=2011-06-15"
                               "&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fops%2Fconnect-numbers"
                               "&RoleSessionName=connect-numbers");

        a.web_identity_token = "eyJ.a-b_c.d";
        a.duration_sec = 900;
        assert_int_equal(sts_request_body(&a, &w), 0);
        assert_string_equal(w, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                               "&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fops%2Fconnect-numbers"
                               "&RoleSessionName=connect-numbers&WebIdentityToken=eyJ.a-b_c.d&DurationSeconds=900");

        char *x = NULL;
        assert_int_equal(sts_request_body(&(struct sts_assume_role){ .role_arn = "r" }, &x), -EINVAL);
}

static const char ok_xml[] =
        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
        "  <AssumeRoleResult>\n"
        "    <SourceIdentity>x</SourceIdentity>\n"
        "    <AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/r/s</Arn>"
        "<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"
        "    <Credentials>\n"
        "      <AccessKeyId>ASIAROLEKEY000000001</AccessKeyId>\n"
        "      <SecretAccessKey>sec/ret+Key=&amp;1</SecretAccessKey>\n"
        "      <SessionToken>TOKEN&#x2F;abc&#61;</SessionToken>\n"
        "      <Expiration>2026-11-27T10:00:00.123Z</Expiration>\n"
        "    </Credentials>\n"
        "    <PackedPolicySize>6</PackedPolicySize>\n"
        "  </AssumeRoleResult>\n"
        "  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>\n"
        "</AssumeRoleResponse>\n";

static void test_parse_credentials(_unused_ void **state) {
        _cleanup_(aws_credentials_freep) struct aws_credentials *c = NULL, *w = NULL;
        assert_int_equal(sts_parse_credentials(ok_xml, strlen(ok_xml), &c), 0);
        assert_string_equal(c->access_key_id, "ASIAROLEKEY000000001");
        assert_string_equal(c->secret_access_key, "sec/ret+Key=&1");
        assert_string_equal(c->session_token, "TOKEN/abc=");
        assert_int_equal(c->expiration, 1795773600ULL);

        static const char web[] = "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                                  "<Credentials><AccessKeyId>ASIAWEBKEY0000000001</AccessKeyId>"
                                  "<SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>"
                                  "<Expiration>2026-11-27T10:00:00Z</Expiration></Credentials>"
                                  "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>";
        assert_int_equal(sts_parse_credentials(web, strlen(web), &w), 0);
        assert_string_equal(w->access_key_id, "ASIAWEBKEY0000000001");
}

static void test_parse_credentials_refused(_unused_ void **state) {
        static const char *const bad[] = {
                "",
                "<AssumeRoleResponse/>",
                /* no Credentials inside the result */
                "<AssumeRoleResponse><AssumeRoleResult></AssumeRoleResult><Credentials><AccessKeyId>A</AccessKeyId>"
                "</Credentials></AssumeRoleResponse>",
                /* missing token */
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA1234</AccessKeyId><SecretAccessKey>s"
                "</SecretAccessKey><Expiration>2026-11-27T10:00:00Z</Expiration></Credentials></AssumeRoleResult>",
                /* bad expiration */
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA1234</AccessKeyId><SecretAccessKey>s"
                "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>soon</Expiration></Credentials>"
                "</AssumeRoleResult>",
                /* a header injection attempt: a space, an unknown entity, a DTD, markup */
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA 1234</AccessKeyId><SecretAccessKey>s"
                "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration>"
                "</Credentials></AssumeRoleResult>",
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA1234</AccessKeyId><SecretAccessKey>&x;"
                "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration>"
                "</Credentials></AssumeRoleResult>",
                "<!DOCTYPE x [<!ENTITY e \"a\">]><AssumeRoleResult><Credentials><AccessKeyId>AKIA1234</AccessKeyId>"
                "<SecretAccessKey>&e;</SecretAccessKey><SessionToken>t</SessionToken>"
                "<Expiration>2026-11-27T10:00:00Z</Expiration></Credentials></AssumeRoleResult>",
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA1234</AccessKeyId><SecretAccessKey>&#10;"
                "</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-11-27T10:00:00Z</Expiration>"
                "</Credentials></AssumeRoleResult>",
                /* unterminated */
                "<AssumeRoleResult><Credentials><AccessKeyId>AKIA1234",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct aws_credentials *c = NULL;
                assert_int_equal(sts_parse_credentials(bad[i], strlen(bad[i]), &c), -EBADMSG);
                assert_null(c);
        }
        /* bounded */
        size_t big = STS_RESPONSE_MAX_BYTES + 1;
        _cleanup_(freep) char *huge = malloc(big);
        assert_non_null(huge);
        memset(huge, ' ', big);
        struct aws_credentials *c = NULL;
        assert_int_equal(sts_parse_credentials(huge, big, &c), -EBADMSG);
}

static void test_parse_error(_unused_ void **state) {
        static const char e[] = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
                                "  <Error>\n    <Type>Sender</Type>\n    <Code>AccessDenied</Code>\n"
                                "    <Message>User: arn:aws:iam::1:user/x is not authorized to perform: "
                                "sts:AssumeRole on resource: arn:aws:iam::2:role/r &amp; more</Message>\n"
                                "  </Error>\n  <RequestId>4d1b8ed4-2ad3-4b59-a2a0-4cbd5a7d7e4f</RequestId>\n"
                                "</ErrorResponse>\n";
        _cleanup_(freep) char *code = NULL, *message = NULL, *c2 = NULL, *m2 = NULL;
        assert_int_equal(sts_parse_error(e, strlen(e), &code, &message), 0);
        assert_string_equal(code, "AccessDenied");
        assert_string_equal(message, "User: arn:aws:iam::1:user/x is not authorized to perform: sts:AssumeRole on "
                                     "resource: arn:aws:iam::2:role/r & more");

        /* a code that is not a word is dropped, the document still counts */
        static const char odd[] = "<ErrorResponse><Error><Code>Access Denied\"</Code></Error></ErrorResponse>";
        assert_int_equal(sts_parse_error(odd, strlen(odd), &c2, &m2), 0);
        assert_null(c2);
        assert_null(m2);

        char *c = NULL, *m = NULL;
        assert_int_equal(sts_parse_error("<html>503</html>", 16, &c, &m), -EBADMSG);
}

static void test_endpoint(_unused_ void **state) {
        _cleanup_(freep) char *a = NULL, *b = NULL, *c = NULL;
        unsetenv("AWS_ENDPOINT_URL_STS");
        unsetenv("AWS_ENDPOINT_URL");
        assert_int_equal(sts_endpoint("eu-west-2", &a), 0);
        assert_string_equal(a, "https://sts.eu-west-2.amazonaws.com");
        setenv("AWS_ENDPOINT_URL", "https://127.0.0.1:8443/", 1);
        assert_int_equal(sts_endpoint("eu-west-2", &b), 0);
        assert_string_equal(b, "https://127.0.0.1:8443");
        setenv("AWS_ENDPOINT_URL_STS", "https://sts.example:9443", 1);
        assert_int_equal(sts_endpoint("eu-west-2", &c), 0);
        assert_string_equal(c, "https://sts.example:9443");
        setenv("AWS_ENDPOINT_URL_STS", "http://sts.example", 1);
        char *d = NULL;
        assert_int_equal(sts_endpoint("eu-west-2", &d), -EPROTONOSUPPORT);
        unsetenv("AWS_ENDPOINT_URL_STS");
        unsetenv("AWS_ENDPOINT_URL");
        assert_int_equal(sts_endpoint("../x", &d), -EINVAL);
}

static void test_refresh_at(_unused_ void **state) {
        /* an hour: 5 minutes before */
        assert_int_equal(role_refresh_at(1000, 1000 + 3600), 1000 + 3600 - 300);
        /* a short lifetime (a test, or STS's minimum under clock skew): half */
        assert_int_equal(role_refresh_at(1000, 1000 + 120), 1000 + 60);
        /* already expired when it arrived: at once */
        assert_int_equal(role_refresh_at(1000, 900), 900);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_request_body),
                cmocka_unit_test(test_parse_credentials),
                cmocka_unit_test(test_parse_credentials_refused),
                cmocka_unit_test(test_parse_error),
                cmocka_unit_test(test_endpoint),
                cmocka_unit_test(test_refresh_at),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
