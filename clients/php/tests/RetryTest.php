<?php

declare(strict_types=1);

namespace Qsm\Webhooks\Tests;

use PHPUnit\Framework\TestCase;
use Qsm\Webhooks\ApiException;
use Qsm\Webhooks\Client;

/**
 * The client's answers to a busy server and to errors, against a stand-in API served by
 * `php -S` on loopback (tests/fixtures/stub_server.php), which logs every request it gets.
 */
final class RetryTest extends TestCase
{
    /** @var resource|null */
    private static $server;
    /** @var string */
    private static $base = '';
    /** @var string */
    private static $log = '';
    /** @var array<int, int> */
    private $waits = [];

    public static function setUpBeforeClass(): void
    {
        self::$log = tempnam(sys_get_temp_dir(), 'qsm-stub-');
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int)substr((string)stream_socket_get_name($socket, false), strrpos((string)stream_socket_get_name($socket, false), ':') + 1);
        fclose($socket);
        $cmd = [PHP_BINARY, '-S', "127.0.0.1:$port", __DIR__ . '/fixtures/stub_server.php'];
        $env = array_merge(getenv(), ['STUB_LOG' => self::$log]);
        self::$server = proc_open($cmd, [1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes, null, $env);
        for ($i = 0; $i < 100; $i++) {
            $c = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.1);
            if ($c) {
                fclose($c);
                break;
            }
            usleep(50000);
        }
        self::$base = "http://127.0.0.1:$port";
    }

    public static function tearDownAfterClass(): void
    {
        if (self::$server) {
            proc_terminate(self::$server);
            proc_close(self::$server);
        }
        @unlink(self::$log);
    }

    protected function setUp(): void
    {
        file_put_contents(self::$log, '');
        $this->waits = [];
    }

    /** @param array<string, mixed> $options */
    private function client(string $scenario, array $options = []): Client
    {
        return new Client(self::$base . '/' . $scenario, 'qsm_app_test', $options + ['sleep' => function (int $s): void {
            $this->waits[] = $s;
        }]);
    }

    /** @return array<int, array<string, mixed>> */
    private function requests(): array
    {
        return array_map(static function (string $l): array {
            return json_decode($l, true);
        }, array_values(array_filter(explode("\n", (string)file_get_contents(self::$log)))));
    }

    public function testABusyAnswerIsRetriedAfterItsRetryAfterWithTheSameIdempotencyKey(): void
    {
        $answer = $this->client('busy_once')->sendEvent('alice', 'email.received', ['alias' => 'a', 'message_id' => 'm', 'size_bytes' => 1]);
        self::assertSame('evt_1', $answer['id']);
        $requests = $this->requests();
        self::assertCount(2, $requests);
        self::assertSame([1], $this->waits, 'waited what Retry-After said');
        self::assertNotNull($requests[0]['key']);
        self::assertSame($requests[0]['key'], $requests[1]['key'], 'the retry is the same request');
        self::assertSame($requests[0]['body'], $requests[1]['body']);
        self::assertSame('Bearer qsm_app_test', $requests[0]['auth']);
        $event = json_decode($requests[0]['body'], true);
        self::assertSame(['type' => 'email.received', 'user' => 'alice', 'data' => ['alias' => 'a', 'message_id' => 'm', 'size_bytes' => 1]], $event);
    }

    public function testRetriesAreBoundedInNumberAndWait(): void
    {
        try {
            $this->client('busy_always', ['max_retries' => 2])->listEndpoints();
            self::fail('a server that stays busy must end in an exception');
        } catch (ApiException $e) {
            self::assertSame([503, 'busy', 1], [$e->getStatus(), $e->getErrorCode(), $e->getRetryAfter()]);
        }
        self::assertCount(3, $this->requests(), 'the first try and 2 retries');
        self::assertSame([1, 1], $this->waits);

        $this->setUp();
        try {
            $this->client('busy_long')->listEndpoints();
            self::fail('a Retry-After beyond max_retry_wait is not waited for');
        } catch (ApiException $e) {
            self::assertSame(120, $e->getRetryAfter());
        }
        self::assertCount(1, $this->requests());
        self::assertSame([], $this->waits);
    }

    public function testErrorsCarryTheApisCodeMessageAndDetails(): void
    {
        try {
            $this->client('invalid')->createEndpoint(['url' => 'https://example.com/hook']);
            self::fail('422 must throw');
        } catch (ApiException $e) {
            self::assertSame(422, $e->getStatus());
            self::assertSame('invalid', $e->getErrorCode());
            self::assertSame('1 problem', $e->getMessage());
            self::assertSame('$.data.size_bytes', $e->getDetails()[0]['path']);
        }
        self::assertCount(1, $this->requests(), 'a 422 is never retried');
        try {
            $this->client('not_json')->listEndpoints();
            self::fail('a 200 that is not JSON must throw');
        } catch (ApiException $e) {
            self::assertSame('bad_response', $e->getErrorCode());
        }
    }

    public function testAServerThatCannotBeReachedIsATransportErrorAndRetriedOnlyWhenSafe(): void
    {
        $waits = [];
        $options = ['connect_timeout' => 1, 'sleep' => static function (int $s) use (&$waits): void {
            $waits[] = $s;
        }];
        $client = new Client('http://127.0.0.1:9/cgi-bin/webhooks.cgi', 't', $options);
        try {
            $client->createEndpoint(['url' => 'https://example.com/hook']);
            self::fail('nothing listens on port 9');
        } catch (ApiException $e) {
            self::assertSame([0, 'transport'], [$e->getStatus(), $e->getErrorCode()]);
        }
        self::assertSame([], $waits, 'creating is not replayed: its answer may have been lost after it was stored');
        try {
            $client->sendEvent('alice', 'email.received', []);
            self::fail('nothing listens on port 9');
        } catch (ApiException $e) {
            self::assertSame('transport', $e->getErrorCode());
        }
        self::assertSame([1, 1], $waits, 'events carry an idempotency key: replayed');
    }

    public function testSendEventsSplitsIntoBatchesEachWithItsOwnKey(): void
    {
        $events = [];
        for ($i = 0; $i < 5; $i++) {
            $events[] = ['type' => 'email.received', 'user' => 'alice', 'data' => ['n' => $i]];
        }
        $out = $this->client('busy_once', ['batch_size' => 2])->sendEvents($events, 'import-7');
        $requests = $this->requests();
        self::assertCount(4, $requests, 'one busy answer, then 3 batches');
        self::assertSame(['import-7/0', 'import-7/0', 'import-7/1', 'import-7/2'], array_column($requests, 'key'));
        self::assertSame([2, 2, 1], array_map(static function (array $r): int {
            return count(json_decode($r['body'], true));
        }, array_slice($requests, 1)));
        self::assertSame(3, $out['requests']);
    }
}
