<?php

declare(strict_types=1);

namespace Qsm\Webhooks;

/**
 * Verifies a webhook QSM Webhooks delivered (docs/signing.md): the signature over
 * `{id}.{timestamp}.{raw body}`, HMAC-SHA256 with the endpoint secret, in either header family —
 * the product's own (`X-QSM-Signature: v1=<hex> …`, preferred when present) or Standard
 * Webhooks' (`webhook-signature: v1,<base64> …`). Any listed signature made with any of the
 * given secrets verifies, so a receiver keeps working through a secret rotation. The timestamp
 * must be within the tolerance of now (a replay defence). Comparison is constant-time.
 *
 * Verify the raw body exactly as received (php://input), before any JSON parsing.
 */
final class Webhook
{
    public const DEFAULT_TOLERANCE = 300;

    /**
     * @param string                                  $payload the raw request body
     * @param array<string, string|array<int,string>> $headers request headers, names in any case
     *        (`getallheaders()`, a PSR-7 `getHeaders()`, or `Webhook::headersFromServer($_SERVER)`)
     * @param string|array<int,string>                $secrets the endpoint's `whsec_…` secret(s)
     * @param array{tolerance?:int, prefix?:string, now?:int} $options
     *        `tolerance` in seconds (300), the header `prefix` (`X-QSM`), `now` (tests)
     * @return array{id:string, timestamp:int, family:string, event:mixed}
     *         the event id (deduplicate on it), its timestamp, the family that verified
     *         (`qsm` or `standard`) and the body decoded as JSON (null when it is not JSON)
     * @throws WebhookVerificationException when it does not verify, saying why
     * @throws \InvalidArgumentException when a secret is not `whsec_` + base64
     */
    public static function verify(string $payload, array $headers, $secrets, array $options = []): array
    {
        $tolerance = (int)($options['tolerance'] ?? self::DEFAULT_TOLERANCE);
        $prefix = (string)($options['prefix'] ?? 'X-QSM');
        $now = (int)($options['now'] ?? time());
        $keys = array_map([self::class, 'decodeSecret'], is_array($secrets) ? array_values($secrets) : [$secrets]);
        if ($keys === []) {
            throw new \InvalidArgumentException('no secret to verify with');
        }
        $h = self::lower($headers);

        $own = strtolower($prefix . '-Signature');
        if (isset($h[$own])) {
            $family = 'qsm';
            $id = self::required($h, $prefix . '-Id');
            $ts = self::required($h, $prefix . '-Timestamp');
            $signatures = [];
            foreach (self::words($h[$own]) as $word) {
                if (strncmp($word, 'v1=', 3) === 0) {
                    $hex = substr($word, 3);
                    if (strlen($hex) % 2 === 0 && ctype_xdigit($hex)) {
                        $signatures[] = (string)hex2bin($hex);
                    }
                }
            }
        } elseif (isset($h['webhook-signature'])) {
            $family = 'standard';
            $id = self::required($h, 'webhook-id');
            $ts = self::required($h, 'webhook-timestamp');
            $signatures = [];
            foreach (self::words($h['webhook-signature']) as $word) {
                if (strncmp($word, 'v1,', 3) === 0) {
                    $raw = base64_decode(substr($word, 3), true);
                    if ($raw !== false) {
                        $signatures[] = $raw;
                    }
                }
            }
        } else {
            throw new WebhookVerificationException('missing_header', "the {$prefix}-Signature (or webhook-signature) header is missing");
        }

        if ($ts === '' || strlen($ts) > 12 || !ctype_digit($ts)) {
            throw new WebhookVerificationException('bad_timestamp', 'the timestamp header is not whole Unix seconds');
        }
        $timestamp = (int)$ts;
        if ($now - $timestamp > $tolerance) {
            throw new WebhookVerificationException('too_old', sprintf('the timestamp is %ds in the past, beyond the tolerance (a replay, or this clock is wrong)', $now - $timestamp));
        }
        if ($timestamp - $now > $tolerance) {
            throw new WebhookVerificationException('too_new', sprintf("the timestamp is %ds in the future, beyond the tolerance (check this machine's clock)", $timestamp - $now));
        }
        if ($signatures === []) {
            throw new WebhookVerificationException('no_signature', 'the signature header holds no v1 signature');
        }
        $content = $id . '.' . $ts . '.' . $payload;
        foreach ($keys as $key) {
            $expected = hash_hmac('sha256', $content, $key, true);
            foreach ($signatures as $signature) {
                if (hash_equals($expected, $signature)) {
                    $event = json_decode($payload, true);
                    return ['id' => $id, 'timestamp' => $timestamp, 'family' => $family, 'event' => $event];
                }
            }
        }
        throw new WebhookVerificationException('mismatch', 'no signature matches: the secret is wrong, or the body was changed (verify the raw bytes, before any JSON parsing)');
    }

    /**
     * The signature of `{id}.{timestamp}.{payload}` with a `whsec_` secret, raw bytes (for tests
     * and for signing test requests to your own receiver).
     */
    public static function sign(string $secret, string $id, int $timestamp, string $payload): string
    {
        return hash_hmac('sha256', $id . '.' . $timestamp . '.' . $payload, self::decodeSecret($secret), true);
    }

    /**
     * Request headers from a CGI/FPM `$_SERVER` (`HTTP_X_QSM_ID` → `x-qsm-id`).
     *
     * @param array<string, mixed> $server
     * @return array<string, string>
     */
    public static function headersFromServer(array $server): array
    {
        $out = [];
        foreach ($server as $name => $value) {
            if (is_string($name) && strncmp($name, 'HTTP_', 5) === 0 && is_string($value)) {
                $out[strtolower(str_replace('_', '-', substr($name, 5)))] = $value;
            }
        }
        return $out;
    }

    /** The HMAC key of a `whsec_` secret: its base64, decoded. */
    public static function decodeSecret(string $secret): string
    {
        $b64 = trim($secret);
        if (strncmp($b64, 'whsec_', 6) === 0) {
            $b64 = substr($b64, 6);
        }
        $key = base64_decode($b64, true);
        if ($key === false || $key === '') {
            throw new \InvalidArgumentException('the secret is not whsec_ followed by base64');
        }
        return $key;
    }

    /**
     * @param array<string, string|array<int,string>> $headers
     * @return array<string, string>
     */
    private static function lower(array $headers): array
    {
        $out = [];
        foreach ($headers as $name => $value) {
            if (is_array($value)) {
                $value = implode(' ', array_map('strval', $value));
            }
            $out[strtolower((string)$name)] = trim((string)$value);
        }
        return $out;
    }

    /** @param array<string, string> $h */
    private static function required(array $h, string $name): string
    {
        $key = strtolower($name);
        if (!isset($h[$key])) {
            throw new WebhookVerificationException('missing_header', "the {$name} header is missing");
        }
        return $h[$key];
    }

    /** @return array<int, string> */
    private static function words(string $value): array
    {
        return preg_split('/\s+/', trim($value), -1, PREG_SPLIT_NO_EMPTY) ?: [];
    }
}
