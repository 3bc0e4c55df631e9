<?php

declare(strict_types=1);

// The few parts of Laravel the example controller uses, as small stand-ins, so that the file in
// docs/examples/laravel/ runs here as it stands (no Laravel is installed on the test machine).

namespace Illuminate\Http {
    class HeaderBag
    {
        /** @var array<string, array<int, string>> */
        private $headers = [];

        /** @param array<string, string> $headers */
        public function __construct(array $headers)
        {
            foreach ($headers as $k => $v) {
                $this->headers[strtolower($k)] = [$v];   // Symfony's HeaderBag::all(): name => [values]
            }
        }

        /** @return array<string, array<int, string>> */
        public function all(): array
        {
            return $this->headers;
        }
    }

    class Request
    {
        /** @var HeaderBag */
        public $headers;
        /** @var string */
        private $content;

        /** @param array<string, string> $headers */
        public function __construct(string $content, array $headers)
        {
            $this->content = $content;
            $this->headers = new HeaderBag($headers);
        }

        public function getContent(): string
        {
            return $this->content;
        }
    }
}

namespace Illuminate\Support\Facades {
    class Cache
    {
        /** @var array<string, mixed> */
        public static $store = [];

        /** @param mixed $value */
        public static function add(string $key, $value, int $ttl): bool
        {
            if (array_key_exists($key, self::$store)) {
                return false;
            }
            self::$store[$key] = $value;
            return true;
        }
    }
}

namespace App\Jobs {
    class HandleQsmEvent
    {
        /** @var array<int, mixed> */
        public static $dispatched = [];

        /** @param mixed $event */
        public static function dispatch($event): void
        {
            self::$dispatched[] = $event;
        }
    }
}

namespace {
    /** @var array<string, mixed> */
    $GLOBALS['qsm_test_config'] = [];

    function config(string $key)
    {
        return $GLOBALS['qsm_test_config'][$key] ?? null;
    }

    function response(): object
    {
        return new class {
            /** @param array<string, mixed> $data */
            public function json(array $data, int $status = 200): array
            {
                return ['status' => $status, 'body' => $data];
            }

            public function noContent(): array
            {
                return ['status' => 204, 'body' => null];
            }
        };
    }
}

namespace Qsm\Webhooks\Tests {
    use App\Http\Controllers\QsmWebhookController;
    use App\Jobs\HandleQsmEvent;
    use Illuminate\Http\Request;
    use PHPUnit\Framework\TestCase;
    use Qsm\Webhooks\Webhook;

    final class LaravelExampleTest extends TestCase
    {
        public function testTheExampleControllerVerifiesDeduplicatesAndRefuses(): void
        {
            require_once __DIR__ . '/../../../docs/examples/laravel/QsmWebhookController.php';
            $old = 'whsec_' . base64_encode(random_bytes(32));
            $new = 'whsec_' . base64_encode(random_bytes(32));
            $GLOBALS['qsm_test_config']['services.qsm_webhooks.secrets'] = [$new, $old];
            $body = '{"id":"evt_1","type":"email.received","user":"alice","data":{"alias":"a"}}';
            $ts = time();
            $headers = ['X-QSM-Id' => 'evt_1', 'X-QSM-Timestamp' => (string)$ts,
                'X-QSM-Signature' => 'v1=' . bin2hex(Webhook::sign($old, 'evt_1', $ts, $body))];
            $controller = new QsmWebhookController();

            self::assertSame(204, $controller(new Request($body, $headers))['status'], 'signed with the old secret');
            self::assertSame(204, $controller(new Request($body, $headers))['status'], 'the retry');
            self::assertCount(1, HandleQsmEvent::$dispatched, 'handled once');
            self::assertSame('email.received', HandleQsmEvent::$dispatched[0]['type']);

            $tampered = $controller(new Request(str_replace('"a"', '"b"', $body), $headers));
            self::assertSame([400, ['error' => 'mismatch']], [$tampered['status'], $tampered['body']]);
            self::assertCount(1, HandleQsmEvent::$dispatched);
        }
    }
}
