<?php

declare(strict_types=1);

namespace Qsm\Webhooks\Tests;

use PHPUnit\Framework\TestCase;
use Qsm\Webhooks\ApiException;
use Qsm\Webhooks\Client;

/**
 * The client against a real installation: QSM_WEBHOOKS_TEST_URL (the CGI's address, e.g.
 * through Apache) and QSM_WEBHOOKS_TEST_TOKEN (an app token). Each test works on users of its
 * own, so it can run against an installation in use.
 */
final class ClientTest extends TestCase
{
    /** @var Client */
    private $client;
    /** @var string */
    private $url = '';
    /** @var string */
    private $user = '';

    protected function setUp(): void
    {
        $this->url = (string)getenv('QSM_WEBHOOKS_TEST_URL');
        $token = (string)getenv('QSM_WEBHOOKS_TEST_TOKEN');
        if ($this->url === '' || $token === '') {
            if (getenv('CI') === 'true') {
                self::fail('CI=true: set QSM_WEBHOOKS_TEST_URL and QSM_WEBHOOKS_TEST_TOKEN to run the client against a real installation');
            }
            self::markTestSkipped('QSM_WEBHOOKS_TEST_URL and QSM_WEBHOOKS_TEST_TOKEN are not set');
        }
        $this->client = new Client($this->url, $token);
        $this->user = 'php-' . bin2hex(random_bytes(4));
    }

    /** @return array<string, mixed> */
    private static function mail(int $n): array
    {
        return ['alias' => "a$n@shop.example", 'message_id' => "<$n@example.net>", 'size_bytes' => 100 + $n];
    }

    public function testAnEventIsRecordedOnceForItsIdempotencyKey(): void
    {
        $ep = $this->client->createEndpoint(['user' => $this->user, 'url' => 'https://example.com/hook']);
        $first = $this->client->sendEvent($this->user, 'email.received', self::mail(1), ['idempotency_key' => 'mail-1']);
        self::assertStringStartsWith('evt_', $first['id']);
        self::assertSame(1, $first['deliveries']);
        $again = $this->client->sendEvent($this->user, 'email.received', self::mail(1), ['idempotency_key' => 'mail-1']);
        self::assertSame($first['id'], $again['id']);
        self::assertTrue($again['events'][0]['duplicate']);
        $log = $this->client->listDeliveries(['endpoint' => $ep['id']]);
        $rows = $log['deliveries'];
        self::assertCount(1, $rows, 'one delivery, not two');
        $delivery = $this->client->getDelivery($rows[0]['id']);
        self::assertSame($first['id'], $delivery['event_id']);
        self::assertSame('pending', $delivery['status']);
        $retried = $this->client->retryDelivery($rows[0]['id']);
        self::assertSame([$rows[0]['id'], 'pending', 0], [$retried['id'], $retried['status'], $retried['attempts']]);
        try {
            $this->client->retryDelivery('dlv_not_there');
            self::fail('a delivery that does not exist was retried');
        } catch (ApiException $e) {
            self::assertSame([404, 'not_found'], [$e->getStatus(), $e->getErrorCode()]);
        }
    }

    public function testManyEventsGoInBatches(): void
    {
        $this->client->createEndpoint(['user' => $this->user, 'url' => 'https://example.com/hook']);
        $events = [];
        for ($i = 0; $i < 250; $i++) {
            $events[] = ['type' => 'email.received', 'user' => $this->user, 'data' => self::mail($i)];
        }
        $out = $this->client->sendEvents($events);
        self::assertSame(3, $out['requests']);
        self::assertCount(250, $out['events']);
        self::assertSame(250, $out['deliveries']);
        self::assertCount(250, array_unique(array_column($out['events'], 'id')));
    }

    public function testAnInvalidEventIsA422NamingEachProblemAndStoresNothing(): void
    {
        $ep = $this->client->createEndpoint(['user' => $this->user, 'url' => 'https://example.com/hook']);
        try {
            $this->client->sendEvents([
                ['type' => 'email.received', 'user' => $this->user, 'data' => self::mail(1)],
                ['type' => 'email.received', 'user' => $this->user, 'data' => ['alias' => 'x']],
            ]);
            self::fail('an event without its required fields was accepted');
        } catch (ApiException $e) {
            self::assertSame([422, 'invalid'], [$e->getStatus(), $e->getErrorCode()]);
            $paths = array_column($e->getDetails(), 'path');
            self::assertContains('$[1].data.message_id', $paths);
        }
        self::assertSame([], $this->client->listDeliveries(['endpoint' => $ep['id']])['deliveries'], 'not even the valid event of the batch');
    }

    public function testABadTokenIs401(): void
    {
        $client = new Client($this->url, 'qsm_not_a_token');
        try {
            $client->listEndpoints();
            self::fail('a bad token was let in');
        } catch (ApiException $e) {
            self::assertSame([401, 'unauthorized'], [$e->getStatus(), $e->getErrorCode()]);
        }
    }

    public function testEndpointsAreCreatedChangedRotatedAndDeleted(): void
    {
        $ep = $this->client->createEndpoint(['user' => $this->user, 'url' => 'https://example.com/a', 'event_types' => ['email.*']]);
        self::assertMatchesRegularExpression('/^whsec_[A-Za-z0-9+\/]+=*$/', $ep['secret']);
        $changed = $this->client->updateEndpoint($ep['id'], ['description' => 'CRM']);
        self::assertSame('CRM', $changed['description']);
        self::assertSame('CRM', $this->client->getEndpoint($ep['id'])['description']);
        $rotated = $this->client->rotateSecret($ep['id'], 60);
        self::assertNotSame($ep['secret'], $rotated['secret']);
        $this->client->deleteEndpoint($ep['id']);
        try {
            $this->client->getEndpoint($ep['id']);
            self::fail('a deleted endpoint was found');
        } catch (ApiException $e) {
            self::assertSame([404, 'not_found'], [$e->getStatus(), $e->getErrorCode()]);
        }
    }

    public function testAPortalLinkOpensThePagesOnceAndRevokingEndsTheSession(): void
    {
        $link = $this->client->portalLink($this->user, ['ttl' => '1m', 'page' => '/endpoints']);
        self::assertSame($this->user, $link['user']);
        self::assertSame(60, $link['ttl_seconds']);
        self::assertStringContainsString('/login?user=' . $this->user . '&', $link['url']);
        $open = static function (string $url, string $cookie = ''): array {
            $ch = curl_init($url);
            $headers = [];
            curl_setopt_array($ch, [CURLOPT_RETURNTRANSFER => true, CURLOPT_HTTPHEADER => $cookie === '' ? [] : ["Cookie: $cookie"],
                CURLOPT_HEADERFUNCTION => static function ($c, string $line) use (&$headers): int {
                    $p = explode(':', $line, 2);
                    if (count($p) === 2) {
                        $headers[strtolower(trim($p[0]))][] = trim($p[1]);
                    }
                    return strlen($line);
                }]);
            $body = (string)curl_exec($ch);
            return [(int)curl_getinfo($ch, CURLINFO_RESPONSE_CODE), $headers, $body];
        };
        [$status, $headers, ] = $open($link['url']);
        self::assertSame(303, $status);
        self::assertStringEndsWith('/endpoints', $headers['location'][0]);
        $cookie = explode(';', $headers['set-cookie'][0])[0];
        self::assertStringStartsWith('qsm_session=', $cookie);
        $pages = preg_replace('#/login\?.*$#', '/endpoints', $link['url']);
        $signedIn = '<span>' . $this->user . '</span>';
        self::assertStringContainsString($signedIn, $open($pages, $cookie)[2], 'signed in as the user');
        self::assertSame(403, $open($link['url'])[0], 'used once');
        self::assertSame(1, $this->client->revokeSessions($this->user)['revoked']);
        self::assertStringNotContainsString($signedIn, $open($pages, $cookie)[2], 'the session is over');
        try {
            $this->client->portalLink($this->user, ['ttl' => '2d']);
            self::fail('a link longer than WEBHOOKS_LOGIN_LINK_TTL was minted');
        } catch (ApiException $e) {
            self::assertSame('$.ttl', $e->getDetails()[0]['path']);
        }
    }
}
