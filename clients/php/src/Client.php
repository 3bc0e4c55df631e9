<?php

declare(strict_types=1);

namespace Qsm\Webhooks;

/**
 * The JSON API of a QSM Webhooks installation (docs/api.md), for the host application: record
 * events for its users, manage their endpoints and deliveries, mint portal links.
 *
 * Every call returns the API's answer decoded as an array, or throws ApiException with the API's
 * status, error code and message. A 503 (`busy`, the database was locked) is retried after its
 * `Retry-After`, at most `max_retries` times and only when the wait is at most `max_retry_wait`
 * seconds; nothing was stored by the failed attempt, so the retry is safe. Events are always sent
 * with an idempotency key (yours, or one the client makes per call), so a retry after a lost
 * answer never records an event twice.
 *
 *     $client = new Client('https://example.com/cgi-bin/webhooks.cgi', getenv('QSM_WEBHOOKS_TOKEN'));
 *     $client->sendEvent('alice', 'email.forwarded', ['alias' => 'a@alice.example', …], ['idempotency_key' => "mail-$id"]);
 */
final class Client
{
    public const VERSION = '0.1.0';

    /** @var string */
    private $baseUrl;
    /** @var string */
    private $token;
    /** @var array{timeout:float, connect_timeout:float, max_retries:int, max_retry_wait:int, batch_size:int, user_agent:string, ca_file:?string} */
    private $options;
    /** @var resource|\CurlHandle|null one handle for every call: connections are kept alive */
    private $curl;
    /** @var callable(int):void */
    private $sleep;

    /**
     * @param string $baseUrl the CGI's address, e.g. https://example.com/cgi-bin/webhooks.cgi
     * @param string $token   an app token (any user) or a user token (that user only)
     * @param array{timeout?:float, connect_timeout?:float, max_retries?:int, max_retry_wait?:int, batch_size?:int, user_agent?:string, ca_file?:string, sleep?:callable} $options
     *        `timeout` per request in seconds (10), `connect_timeout` (5), `max_retries` of a 503
     *        or a connection failure (2), `max_retry_wait` the longest Retry-After honoured (30),
     *        `batch_size` events per request in sendEvents (100, at most the server's
     *        WEBHOOKS_MAX_EVENTS_PER_REQUEST), `ca_file` a CA bundle, `sleep` (tests)
     */
    public function __construct(string $baseUrl, string $token, array $options = [])
    {
        if (!preg_match('#^https?://[^/\s]+#i', $baseUrl)) {
            throw new \InvalidArgumentException('the base URL must be the http(s) address of webhooks.cgi');
        }
        if ($token === '') {
            throw new \InvalidArgumentException('an API token is required');
        }
        $this->baseUrl = rtrim($baseUrl, '/');
        $this->token = $token;
        $this->options = [
            'timeout' => (float)($options['timeout'] ?? 10),
            'connect_timeout' => (float)($options['connect_timeout'] ?? 5),
            'max_retries' => max(0, (int)($options['max_retries'] ?? 2)),
            'max_retry_wait' => max(0, (int)($options['max_retry_wait'] ?? 30)),
            'batch_size' => max(1, (int)($options['batch_size'] ?? 100)),
            'user_agent' => (string)($options['user_agent'] ?? 'qsm-webhooks-php/' . self::VERSION),
            'ca_file' => isset($options['ca_file']) ? (string)$options['ca_file'] : null,
        ];
        $this->sleep = $options['sleep'] ?? static function (int $seconds): void {
            sleep($seconds);
        };
    }

    public function __destruct()
    {
        if ($this->curl !== null) {
            curl_close($this->curl);
        }
    }

    // Events.

    /**
     * Records one event for a user; returns `{"id", "ids", "deliveries", "events"}`.
     *
     * @param array<string, mixed> $data    the event's data, as its type's schema says
     * @param array{idempotency_key?:string, occurred_at?:string, actor?:array, ordering_key?:string} $options
     * @return array<string, mixed>
     */
    public function sendEvent(string $user, string $type, array $data, array $options = []): array
    {
        $event = ['type' => $type, 'user' => $user, 'data' => (object)$data];
        foreach (['idempotency_key', 'occurred_at', 'actor', 'ordering_key'] as $field) {
            if (isset($options[$field])) {
                $event[$field] = $options[$field];
            }
        }
        $key = $options['idempotency_key'] ?? self::newKey();
        return $this->request('POST', '/api/v1/events', $event, ['Idempotency-Key: ' . $key], true);
    }

    /**
     * Records many events, `batch_size` per request (each request stored whole or not at all).
     * Each event is `['type' => …, 'user' => …, 'data' => […]]` with the optional fields of
     * sendEvent. Returns the events' answers in order (`id`, `deliveries`, `duplicate`) and the
     * total of deliveries queued. An error stops at the batch that failed: the exception says
     * which (`getDetails()` paths count from that batch's first event), earlier batches are stored.
     *
     * @param array<int, array<string, mixed>> $events
     * @param string|null $idempotencyKey a key for the whole call (one is made if none is given)
     * @return array{events: array<int, array<string, mixed>>, deliveries: int, requests: int}
     */
    public function sendEvents(array $events, ?string $idempotencyKey = null): array
    {
        $key = $idempotencyKey ?? self::newKey();
        $out = ['events' => [], 'deliveries' => 0, 'requests' => 0];
        foreach (array_chunk(array_values($events), $this->options['batch_size']) as $i => $batch) {
            foreach ($batch as $j => $event) {
                if (isset($event['data']) && is_array($event['data'])) {
                    $batch[$j]['data'] = (object)$event['data'];
                }
            }
            $answer = $this->request('POST', '/api/v1/events', $batch, ['Idempotency-Key: ' . $key . '/' . $i], true);
            $out['requests']++;
            $out['deliveries'] += (int)($answer['deliveries'] ?? 0);
            foreach ($answer['events'] ?? [] as $e) {
                $out['events'][] = $e;
            }
        }
        return $out;
    }

    // Endpoints.

    /**
     * @param array<string, string> $query e.g. ['user' => 'alice'] with an app token
     * @return array<int, array<string, mixed>>
     */
    public function listEndpoints(array $query = []): array
    {
        return $this->request('GET', '/api/v1/endpoints' . self::query($query));
    }

    /**
     * Creates an endpoint: `url`, and optionally `user` (app token), `description`,
     * `event_types`, `ordering`, `max_per_second`, `max_in_flight`, `headers`… The answer
     * carries its `secret`, shown this once.
     *
     * @param array<string, mixed> $fields
     * @return array<string, mixed>
     */
    public function createEndpoint(array $fields): array
    {
        return $this->request('POST', '/api/v1/endpoints', $fields);
    }

    /** @return array<string, mixed> */
    public function getEndpoint(string $id): array
    {
        return $this->request('GET', '/api/v1/endpoints/' . rawurlencode($id));
    }

    /**
     * @param array<string, mixed> $fields the fields to change
     * @return array<string, mixed>
     */
    public function updateEndpoint(string $id, array $fields): array
    {
        return $this->request('PATCH', '/api/v1/endpoints/' . rawurlencode($id), $fields);
    }

    /** @return array<string, mixed> */
    public function deleteEndpoint(string $id): array
    {
        return $this->request('DELETE', '/api/v1/endpoints/' . rawurlencode($id));
    }

    /**
     * A new signing secret; the old one keeps signing for `grace_seconds` (the server's default
     * when null).
     *
     * @return array<string, mixed>
     */
    public function rotateSecret(string $id, ?int $graceSeconds = null): array
    {
        $body = $graceSeconds === null ? [] : ['grace_seconds' => $graceSeconds];
        return $this->request('POST', '/api/v1/endpoints/' . rawurlencode($id) . '/rotate-secret', $body);
    }

    /** Sends a test event to the endpoint now and says what its receiver answered. @return array<string, mixed> */
    public function testEndpoint(string $id): array
    {
        return $this->request('POST', '/api/v1/endpoints/' . rawurlencode($id) . '/test', []);
    }

    // Deliveries.

    /**
     * The delivery log, newest first: filters `status`, `endpoint`, `type`, `before`, `user`.
     *
     * @param array<string, string> $filters
     * @return array<string, mixed>
     */
    public function listDeliveries(array $filters = []): array
    {
        return $this->request('GET', '/api/v1/deliveries' . self::query($filters));
    }

    /** One delivery with its attempts. @return array<string, mixed> */
    public function getDelivery(string $id): array
    {
        return $this->request('GET', '/api/v1/deliveries/' . rawurlencode($id));
    }

    /** Sends a delivery again at the next dispatcher run. @return array<string, mixed> */
    public function retryDelivery(string $id): array
    {
        return $this->request('POST', '/api/v1/deliveries/' . rawurlencode($id) . '/retry', []);
    }

    // Portal links and sessions.

    /**
     * A signed, expiring, single-use link that opens the webhook pages as `$user`
     * (docs/embedding.md): `{"url", "user", "expires_at", "ttl_seconds"}`.
     *
     * @param array{ttl?:string|int, embed?:bool, page?:string} $options `ttl` ("5m" or seconds;
     *        at most the server's WEBHOOKS_LOGIN_LINK_TTL), `embed` (for a frame), `page`
     *        (where it lands, e.g. "/endpoints")
     * @return array<string, mixed>
     */
    public function portalLink(string $user, array $options = []): array
    {
        $body = ['user' => $user];
        foreach (['ttl', 'embed', 'page'] as $field) {
            if (array_key_exists($field, $options)) {
                $body[$field] = $options[$field];
            }
        }
        return $this->request('POST', '/api/v1/portal-links', $body);
    }

    /**
     * Ends every page session of a user and refuses the portal links issued to them before:
     * when they sign out of the application, change their password or are removed.
     *
     * @return array<string, mixed> `{"user", "revoked"}`: how many sessions were live
     */
    public function revokeSessions(string $user): array
    {
        return $this->request('DELETE', '/api/v1/users/' . rawurlencode($user) . '/sessions');
    }

    // The request.

    /**
     * @param mixed              $body    encoded as JSON when not null
     * @param array<int, string> $headers
     * @param bool               $replayable whether a request whose answer was lost may be
     *        sent again (reads, deletes, and events, which carry an idempotency key)
     * @return array<mixed>
     */
    private function request(string $method, string $path, $body = null, array $headers = [], bool $replayable = false): array
    {
        $replayable = $replayable || $method === 'GET' || $method === 'DELETE';
        $payload = null;
        if ($body !== null) {
            $payload = json_encode($body, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
            if ($payload === false) {
                throw new \InvalidArgumentException('the request cannot be encoded as JSON: ' . json_last_error_msg());
            }
        }
        for ($attempt = 0; ; $attempt++) {
            try {
                return $this->once($method, $path, $payload, $headers);
            } catch (ApiException $e) {
                $wait = $this->retryWait($e, $replayable);
                if ($wait === null || $attempt >= $this->options['max_retries']) {
                    throw $e;
                }
                ($this->sleep)($wait);
            }
        }
    }

    /** Seconds to wait before sending again, or null when this error is final. */
    private function retryWait(ApiException $e, bool $replayable): ?int
    {
        if ($e->getStatus() === 503) {
            $wait = $e->getRetryAfter() ?? 1;
            return $wait <= $this->options['max_retry_wait'] ? $wait : null;
        }
        if ($e->getStatus() === 0 && $replayable) {
            return 1;
        }
        return null;
    }

    /**
     * @param array<int, string> $headers
     * @return array<mixed>
     */
    private function once(string $method, string $path, ?string $payload, array $headers): array
    {
        if ($this->curl === null) {
            $this->curl = curl_init();
        } else {
            curl_reset($this->curl);
        }
        $responseHeaders = [];
        $all = array_merge([
            'Authorization: Bearer ' . $this->token,
            'Accept: application/json',
            'Expect:',
        ], $headers);
        if ($payload !== null) {
            $all[] = 'Content-Type: application/json';
        }
        $opts = [
            CURLOPT_URL => $this->baseUrl . $path,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HTTPHEADER => $all,
            CURLOPT_USERAGENT => $this->options['user_agent'],
            CURLOPT_TIMEOUT_MS => (int)($this->options['timeout'] * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int)($this->options['connect_timeout'] * 1000),
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_HEADERFUNCTION => static function ($ch, string $line) use (&$responseHeaders): int {
                $parts = explode(':', $line, 2);
                if (count($parts) === 2) {
                    $responseHeaders[strtolower(trim($parts[0]))] = trim($parts[1]);
                }
                return strlen($line);
            },
        ];
        if ($payload !== null) {
            $opts[CURLOPT_POSTFIELDS] = $payload;
        }
        if ($this->options['ca_file'] !== null) {
            $opts[CURLOPT_CAINFO] = $this->options['ca_file'];
        }
        curl_setopt_array($this->curl, $opts);
        $raw = curl_exec($this->curl);
        if ($raw === false) {
            throw new ApiException(0, 'transport', sprintf('%s %s: %s', $method, $this->baseUrl . $path, curl_error($this->curl)));
        }
        $status = (int)curl_getinfo($this->curl, CURLINFO_RESPONSE_CODE);
        $decoded = $raw === '' ? [] : json_decode((string)$raw, true);
        if ($status >= 200 && $status < 300) {
            if (!is_array($decoded)) {
                throw new ApiException($status, 'bad_response', sprintf('%s %s answered %d with a body that is not JSON', $method, $path, $status));
            }
            return $decoded;
        }
        $retryAfter = isset($responseHeaders['retry-after']) && ctype_digit($responseHeaders['retry-after'])
            ? (int)$responseHeaders['retry-after'] : null;
        $error = is_array($decoded) && isset($decoded['error']) && is_array($decoded['error']) ? $decoded['error'] : [];
        throw new ApiException(
            $status,
            (string)($error['code'] ?? 'http_' . $status),
            (string)($error['message'] ?? sprintf('%s %s answered %d', $method, $path, $status)),
            $error['details'] ?? null,
            $retryAfter
        );
    }

    /** @param array<string, string> $query */
    private static function query(array $query): string
    {
        $query = array_filter($query, static function ($v): bool {
            return $v !== null && $v !== '';
        });
        return $query === [] ? '' : '?' . http_build_query($query, '', '&', PHP_QUERY_RFC3986);
    }

    private static function newKey(): string
    {
        return 'php-' . bin2hex(random_bytes(12));
    }
}
