<?php

/**
 * The sign-in form of a local stand-in source: an address (and, for an institution, its IdP;
 * for Microsoft, optionally the account id). Nothing typed here is logged or stored.
 */

use SimpleSAML\Auth;
use SimpleSAML\Error;
use SimpleSAML\Module\callysto\Auth\Source\StandIn;

if (!isset($_REQUEST['AuthState'])) {
    throw new Error\BadRequest('Missing AuthState parameter.');
}
$stateId = (string) $_REQUEST['AuthState'];
$state = Auth\State::loadState($stateId, StandIn::STAGEID);
$source = Auth\Source::getById($state[StandIn::AUTHID]);
if (!($source instanceof StandIn)) {
    throw new Error\Exception('Not a stand-in source.');
}

$error = false;
if ($_SERVER['REQUEST_METHOD'] === 'POST') {
    $address = trim((string) ($_POST['email'] ?? ''));
    $idp = trim((string) ($_POST['idp'] ?? '')) ?: $source->institutionIdp;
    $accountId = trim((string) ($_POST['account_id'] ?? ''));
    if (StandIn::isAddress($address) && preg_match('/^[A-Za-z0-9._:-]{0,64}$/', $accountId) === 1) {
        $source->signIn($state, $address, $idp, $accountId);
    }
    $error = true;
}

$names = [
    'institution' => ['Institution account', "compte d'établissement"],
    'google' => ['Google account', 'compte Google'],
    'microsoft' => ['Microsoft account', 'compte Microsoft'],
];
$h = function (string $text): string {
    return htmlspecialchars($text, ENT_QUOTES | ENT_HTML5, 'UTF-8');
};
[$en, $fr] = $names[$source->kind];
header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: no-store');
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Callysto: <?= $h($en) ?></title>
<style>
  html[data-lang="fr"] .lang-en, html:not([data-lang="fr"]) .lang-fr { display: none !important; }
  body { font-family: sans-serif; max-width: 30rem; margin: 2rem auto; }
  label, input { display: block; width: 100%; margin-top: 0.5rem; }
  .note { color: #666; font-size: 0.9rem; margin-top: 1rem; }
  .error { color: #a00; }
</style>
</head>
<body>
<p><a href="#" data-set-lang="en" id="lang-en">English</a> | <a href="#" data-set-lang="fr" id="lang-fr" lang="fr">Français</a></p>
<form method="post" id="stand-in-signin" action="?AuthState=<?= $h(rawurlencode($stateId)) ?>">
  <h1>
    <span class="lang-en">Sign in with your <?= $h($en) ?></span>
    <span class="lang-fr">Connexion avec votre <?= $h($fr) ?></span>
  </h1>
  <?php if ($error) : ?>
    <p class="error"><span class="lang-en">Please enter an e-mail address such as name@school.ca.</span>
      <span class="lang-fr">Veuillez saisir une adresse courriel telle que nom@ecole.ca.</span></p>
  <?php endif; ?>
  <label for="email_input"><span class="lang-en">E-mail address</span><span class="lang-fr">Adresse courriel</span></label>
  <input id="email_input" type="email" name="email" required autocomplete="email" autofocus>
  <?php if ($source->kind === 'institution') : ?>
    <label for="idp_input"><span class="lang-en">Your institution's identity provider (SAML entity ID)</span>
      <span class="lang-fr">Le fournisseur d'identité de votre établissement (entity ID SAML)</span></label>
    <input id="idp_input" type="text" name="idp" value="<?= $h($source->institutionIdp) ?>">
  <?php elseif ($source->kind === 'microsoft') : ?>
    <label for="account_input"><span class="lang-en">Microsoft account id (optional)</span>
      <span class="lang-fr">Identifiant du compte Microsoft (facultatif)</span></label>
    <input id="account_input" type="text" name="account_id" value="">
  <?php endif; ?>
  <input id="login_submit" type="submit" value="Sign in / Se connecter">
  <p class="note">
    <span class="lang-en">A stand-in for the real sign-in service, on this machine: no password is asked.</span>
    <span class="lang-fr">Un substitut du vrai service de connexion, sur cette machine : aucun mot de passe n'est demandé.</span>
  </p>
</form>
<script>
  (function () {
    var root = document.documentElement;
    function setLang(lang) { root.setAttribute("data-lang", lang); root.setAttribute("lang", lang);
      try { window.localStorage.setItem("callysto-lang", lang); } catch (e) {} }
    var stored = null;
    try { stored = window.localStorage.getItem("callysto-lang"); } catch (e) {}
    var chosen = <?= json_encode($state['callysto:language'] ?? '') ?>;
    setLang((chosen || stored) === "fr" ? "fr" : "en");
    document.querySelectorAll("[data-set-lang]").forEach(function (a) {
      a.addEventListener("click", function (e) { e.preventDefault(); setLang(a.getAttribute("data-set-lang")); });
    });
  })();
</script>
</body>
</html>
