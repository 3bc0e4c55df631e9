<?php

declare(strict_types=1);

namespace Qsm\Webhooks\Tests;

use PHPUnit\Framework\TestCase;
use Qsm\Webhooks\Webhook;
use Qsm\Webhooks\WebhookVerificationException;

/**
 * Webhook::verify and ::sign against the vectors the Rust tests read too
 * (tests/vectors/signing.json at the repository's root), so the two never drift.
 */
final class WebhookTest extends TestCase
{
    /** @return array<string, mixed> */
    private static function vectors(): array
    {
        $path = getenv('QSM_WEBHOOKS_VECTORS') ?: __DIR__ . '/../../../tests/vectors/signing.json';
        $json = json_decode((string)file_get_contents($path), true);
        self::assertIsArray($json, "cannot read $path");
        return $json;
    }

    /** @return array<string, array{0: array<string, mixed>}> */
    public function signCases(): array
    {
        $out = [];
        foreach (self::vectors()['sign'] as $case) {
            $out[$case['name']] = [$case];
        }
        return $out;
    }

    /** @return array<string, array{0: array<string, mixed>}> */
    public function verifyCases(): array
    {
        $out = [];
        foreach (self::vectors()['verify'] as $case) {
            $out[$case['name']] = [$case];
        }
        return $out;
    }

    public function testTheVectorsAreThere(): void
    {
        $v = self::vectors();
        self::assertGreaterThanOrEqual(5, count($v['sign']));
        self::assertGreaterThanOrEqual(20, count($v['verify']));
        self::assertSame('standard_webhooks_published_vector', $v['sign'][0]['name']);
    }

    /**
     * @dataProvider signCases
     * @param array<string, mixed> $case
     */
    public function testSignsAsTheVectorSays(array $case): void
    {
        $mac = Webhook::sign($case['secret'], $case['id'], $case['timestamp'], $case['body']);
        self::assertSame($case['hex'], bin2hex($mac));
        self::assertSame($case['base64'], base64_encode($mac));
    }

    /**
     * @dataProvider verifyCases
     * @param array<string, mixed> $case
     */
    public function testVerifiesAsTheVectorSays(array $case): void
    {
        $options = ['prefix' => $case['prefix'], 'now' => $case['now'], 'tolerance' => $case['tolerance']];
        try {
            $got = Webhook::verify($case['body'], $case['headers'], $case['secrets'], $options);
            self::assertTrue($case['valid'], $case['name'] . ' verified but must fail with ' . ($case['error'] ?? ''));
            self::assertSame($case['family'], $got['family']);
            $id = $case['headers'][$case['prefix'] . '-Id'] ?? $case['headers'][strtolower($case['prefix'] . '-Id')] ?? $case['headers']['webhook-id'];
            self::assertSame($id, $got['id']);
        } catch (WebhookVerificationException $e) {
            self::assertFalse($case['valid'], "{$case['name']} must verify: " . $e->getMessage());
            self::assertSame($case['error'], $e->getReason(), $e->getMessage());
        }
    }

    public function testHeadersComeFromServerVariablesAndPsr7Arrays(): void
    {
        $case = self::vectors()['verify'][0];
        $server = ['REQUEST_METHOD' => 'POST', 'CONTENT_TYPE' => 'application/json'];
        foreach ($case['headers'] as $name => $value) {
            $server['HTTP_' . strtoupper(str_replace('-', '_', $name))] = $value;
        }
        $opts = ['now' => $case['now']];
        $fromServer = Webhook::verify($case['body'], Webhook::headersFromServer($server), $case['secrets'], $opts);
        self::assertSame('qsm', $fromServer['family']);
        self::assertSame('email.forwarded', $fromServer['event']['type'], 'the body, decoded after verifying');
        $psr7 = array_map(static function (string $v): array {
            return [$v];
        }, $case['headers']);
        self::assertSame('qsm', Webhook::verify($case['body'], $psr7, $case['secrets'][0], $opts)['family']);
    }

    public function testTheDefaultToleranceIsFiveMinutesOfTheRealClock(): void
    {
        $secret = 'whsec_' . base64_encode(random_bytes(32));
        $body = '{"type":"email.received"}';
        $sign = static function (int $ts) use ($secret, $body): array {
            return ['webhook-id' => 'evt_1', 'webhook-timestamp' => (string)$ts,
                'webhook-signature' => 'v1,' . base64_encode(Webhook::sign($secret, 'evt_1', $ts, $body))];
        };
        self::assertSame('standard', Webhook::verify($body, $sign(time() - 290), $secret)['family']);
        try {
            Webhook::verify($body, $sign(time() - 400), $secret);
            self::fail('a timestamp 400 s old verified');
        } catch (WebhookVerificationException $e) {
            self::assertSame('too_old', $e->getReason());
        }
    }

    public function testASecretThatIsNotBase64IsAnArgumentError(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        Webhook::verify('{}', ['webhook-signature' => 'v1,AAAA'], 'whsec_not base64!');
    }
}
