<?php
// A Laravel receiver for QSM Webhooks (composer require qsm/webhooks; or require the release's
// clients/php/autoload.php). Route it outside the `web` middleware group, which would ask for a
// CSRF token:
//
//     // routes/api.php
//     Route::post('/hooks/qsm', \App\Http\Controllers\QsmWebhookController::class);
//
//     // config/services.php: the endpoint's secret (during a rotation: both, newest first)
//     'qsm_webhooks' => ['secrets' => explode(' ', env('QSM_WEBHOOK_SECRETS', ''))],
//
// tests/ (PHPUnit, clients/php/tests/LaravelExampleTest.php) runs this file as it stands.

namespace App\Http\Controllers;

use App\Jobs\HandleQsmEvent;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Cache;
use Qsm\Webhooks\Webhook;
use Qsm\Webhooks\WebhookVerificationException;

class QsmWebhookController
{
    public function __invoke(Request $request)
    {
        try {
            // The raw body, exactly as received: verify before any JSON parsing.
            $delivery = Webhook::verify(
                $request->getContent(),
                $request->headers->all(),
                config('services.qsm_webhooks.secrets')
            );
        } catch (WebhookVerificationException $e) {
            return response()->json(['error' => $e->getReason()], 400);
        }

        // At least once: a retry may bring the same event again. Cache::add is atomic and
        // false when the key exists, so each event id is handled once (keep it past the retry
        // schedule: a day is plenty).
        if (!Cache::add('qsm-webhook:' . $delivery['id'], true, 86400)) {
            return response()->noContent();
        }

        // Answer within seconds: do the work in a queued job.
        HandleQsmEvent::dispatch($delivery['event']);

        return response()->noContent();
    }
}
