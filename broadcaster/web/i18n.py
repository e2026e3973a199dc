"""The console's words in English and French, and which language a visitor gets.

A choice made with the language toggle (kept in the session) wins; else the browser's
Accept-Language; else the deployment's default language. A refusal by a command is said in the
visitor's language by its error code (`web/refusals.py`); the command's own English sentence
follows it as a detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

LANGUAGES: Final = ("fr", "en")

# key: (English, French)
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "app_name": ("Public-warning SMS console", "Console d'alerte SMS"),
    "skip": ("Skip to content", "Aller au contenu"),
    "nav_broadcasts": ("Broadcasts", "Diffusions"),
    "nav_new_live": ("New live broadcast", "Nouvelle diffusion réelle"),
    "nav_new_drill": ("New drill", "Nouvel exercice"),
    "nav_drills": ("Drill reports", "Rapports d'exercice"),
    "nav_audit": ("Audit log", "Journal d'audit"),
    "sign_out": ("Sign out", "Se déconnecter"),
    "signed_in_as": ("Signed in as", "Connecté en tant que"),
    "language": ("Language", "Langue"),
    "switch_language": ("Français", "English"),
    "role_operator": ("operator", "opérateur"),
    "role_approver": ("approver", "approbateur"),
    "role_admin": ("admin", "administrateur"),
    # sign-in
    "sign_in": ("Sign in", "Se connecter"),
    "sign_in_intro": (
        "Paste the API token an administrator gave you (bct_…). It is checked, then forgotten: "
        "the console keeps only a signed session.",
        "Collez le jeton d'API remis par un administrateur (bct_…). Il est vérifié puis oublié : "
        "la console ne garde qu'une session signée.",
    ),
    "token": ("API token", "Jeton d'API"),
    "sign_in_failed": ("Sign-in refused", "Connexion refusée"),
    "too_many_sign_ins": (
        "Too many failed sign-ins from this address: retry in {wait} s.",
        "Trop de connexions échouées depuis cette adresse : réessayez dans {wait} s.",
    ),
    "session_ended": (
        "Your session ended (signed out, expired, or the token was revoked): sign in again.",
        "Votre session est terminée (déconnexion, expiration ou jeton révoqué) : reconnectez-vous.",
    ),
    # banners
    "banner_live": (
        "LIVE — this reaches the public",
        "DIFFUSION RÉELLE — ce message part vers le public",
    ),
    "banner_live_detail": (
        "Every subscriber in the chosen areas receives this text on their phone.",
        "Tous les abonnés des zones choisies reçoivent ce texte sur leur téléphone.",
    ),
    "banner_drill": (
        "DRILL — test group only",
        "EXERCICE — groupe de test uniquement",
    ),
    "banner_drill_detail": (
        "Only test-group handsets receive it, and every text starts with the exercise marker.",
        "Seuls les téléphones du groupe de test le reçoivent, et chaque texte commence par la "
        "mention d'exercice.",
    ),
    "kind_live": ("live", "réelle"),
    "kind_drill": ("drill", "exercice"),
    # home
    "recent_broadcasts": ("Recent broadcasts", "Diffusions récentes"),
    "none_yet": ("Nothing yet.", "Rien pour l'instant."),
    "col_id": ("No.", "N°"),
    "col_kind": ("Kind", "Type"),
    "col_state": ("State", "État"),
    "col_template": ("Template", "Modèle"),
    "col_recipients": ("Recipients", "Destinataires"),
    "col_created_by": ("Created by", "Créée par"),
    "col_created_at": ("Created", "Créée le"),
    "open": ("Open", "Ouvrir"),
    "col_areas": ("Areas", "Zones"),
    "and_more": ("and {n} more", "et {n} autres"),
    "follows_broadcast": ("follows broadcast {id}", "fait suite à la diffusion {id}"),
    "your_time": ("your time", "votre heure"),
    "nav_queue": ("To approve", "À approuver"),
    "queue_title": ("Awaiting your approval", "En attente de votre approbation"),
    "queue_empty": (
        "Nothing awaits your approval.",
        "Rien n'attend votre approbation.",
    ),
    "queue_line": (
        "{recipients} recipients, {parts} SMS parts · asked by {who} · template {template}",
        "{recipients} destinataires, {parts} parties de SMS · demandée par {who} · modèle "
        "{template}",
    ),
    "review_and_approve": ("Review and approve", "Examiner et approuver"),
    "summary_title": ("What you are asked to approve", "Ce que vous devez approuver"),
    "asked_by": ("Asked by", "Demandée par"),
    "texts_by_language": ("Texts, by language", "Textes, par langue"),
    "text_reach": (
        "{recipients} recipients, {parts} part(s) each, {n} département(s)",
        "{recipients} destinataires, {parts} partie(s) chacun, {n} département(s)",
    ),
    "of_broadcast": ("of broadcast {id}", "de la diffusion {id}"),
    # compose
    "compose_live_title": ("New live broadcast", "Nouvelle diffusion réelle"),
    "compose_drill_title": ("New drill", "Nouvel exercice"),
    "step_areas": ("1. Areas", "1. Zones"),
    "search_areas": ("Search areas by name or code", "Chercher une zone par nom ou code"),
    "search": ("Search", "Chercher"),
    "search_hint": (
        "e.g. Paris, 75, Guadeloupe, Île-de-France",
        "ex. Paris, 75, Guadeloupe, Île-de-France",
    ),
    "departements": ("Départements", "Départements"),
    "regions": ("Regions", "Régions"),
    "subscribers": ("subscribers", "abonnés"),
    "test_group": ("in the test group", "dans le groupe de test"),
    "no_match": ("No area matches.", "Aucune zone ne correspond."),
    "choose_area": (
        "Choose at least one area (tick one, or type its code).",
        "Choisissez au moins une zone (cochez-la ou tapez son code).",
    ),
    "extra_areas": ("Other areas (codes)", "Autres zones (codes)"),
    "extra_areas_hint": (
        "Comma-separated: commune:75056, cell:C75001, dep:2A, region:11",
        "Séparées par des virgules : commune:75056, cell:C75001, dep:2A, region:11",
    ),
    # the map (web/geo.py, templates/web/_map.html, static/map.js)
    "map_title": ("Map of the areas", "Carte des zones"),
    "map_jump": ("Show on the map", "Afficher sur la carte"),
    "map_mainland": ("Mainland France", "France métropolitaine"),
    "map_label": (
        "Map: click a département to add or remove it; draw a polygon or a circle",
        "Carte : cliquez un département pour l'ajouter ou le retirer ; dessinez un polygone ou "
        "un cercle",
    ),
    "map_view_label": ("Map of the broadcast's areas", "Carte des zones de la diffusion"),
    "map_hint": (
        "Click départements to add or remove them. Draw a polygon or a circle with the tools on "
        "the left (edit or delete it there too): it reaches the people present in the cells it "
        "meets. The figures update as the shape changes.",
        "Cliquez des départements pour les ajouter ou les retirer. Dessinez un polygone ou un "
        "cercle avec les outils à gauche (modifiez-le ou supprimez-le au même endroit) : il "
        "atteint les personnes présentes dans les cellules qu'il touche. Les chiffres suivent "
        "la forme.",
    ),
    "shapes": ("Shapes (one per line)", "Formes (une par ligne)"),
    "shapes_hint": (
        "Filled in by the map, or typed: polygon:LAT,LON LAT,LON … (closed: the first point "
        "repeated last), circle:LAT,LON,RADIUS_KM",
        "Remplies par la carte, ou tapées : polygon:LAT,LON LAT,LON … (fermé : le premier point "
        "répété à la fin), circle:LAT,LON,RAYON_KM",
    ),
    "map_recipients": ("Recipients", "Destinataires"),
    "map_cells": ("Cells selected", "Cellules retenues"),
    "map_present": ("Present (seen within the window)", "Présents (vus dans la fenêtre)"),
    "map_stale": ("Stale locations (not reached)", "Positions trop anciennes (non atteintes)"),
    "map_overspill": ("Coverage outside the shape", "Couverture hors de la forme"),
    "map_counting": ("Counting…", "Décompte…"),
    "map_empty": ("Pick an area or draw a shape.", "Choisissez une zone ou dessinez une forme."),
    "map_too_long": (
        "The shapes are too long to count here (thousands of points): Preview counts them.",
        "Les formes sont trop longues pour être comptées ici (des milliers de points) : "
        "l'aperçu les compte.",
    ),
    "map_cells_more": ("cells not drawn (too many)", "cellules non dessinées (trop nombreuses)"),
    "map_sent_legend": (
        "Colour and figure: share of each département's SMS parts delivered to a phone "
        "(delivery receipts)",
        "Couleur et chiffre : part des SMS de chaque département remis sur un téléphone "
        "(accusés de réception)",
    ),
    "map_sent": ("sent", "envoyé"),
    "map_delivered": ("delivered", "remis"),
    "map_attribution": (
        "Outlines: IGN Admin Express, Licence Ouverte",
        "Contours : IGN Admin Express, Licence Ouverte",
    ),
    "step_message": ("2. Message", "2. Message"),
    "template": ("Template", "Modèle"),
    "variables": ("Variables", "Variables"),
    "area_overrides": (
        "Override the areas' own values (optional)",
        "Remplacer les valeurs propres aux zones (facultatif)",
    ),
    "needed_by": ("used by", "utilisée par"),
    "in_area_language": ("in the area's language (French)", "dans la langue de la zone (français)"),
    "per_language_hint": (
        "Give it in each language below; a language left empty gets the French text, and the "
        "preview flags it",
        "Donnez-la dans chaque langue ci-dessous ; une langue laissée vide reçoit le texte "
        "français, et l'aperçu le signale",
    ),
    "fallback_flag": (
        "Not in its readers' language:",
        "Pas dans la langue de ses lecteurs :",
    ),
    "fallback_for": (
        "also sent to {n} recipient(s) speaking {lang} (no text in their language)",
        "envoyé aussi à {n} destinataire(s) parlant {lang} (pas de texte dans leur langue)",
    ),
    "written_in": (
        "{name} is written in {lang}",
        "{name} est écrite en {lang}",
    ),
    "gsm_safe": (
        "Replace accented letters to save parts (ê → e)",
        "Remplacer les lettres accentuées pour économiser des parties (ê → e)",
    ),
    "allow_language_fallback": (
        "Send even where a group gets a text not in its language (listed in the preview)",
        "Envoyer même si un groupe reçoit un texte qui n'est pas dans sa langue (voir l'aperçu)",
    ),
    "expires": ("Expires after", "Expire après"),
    "minutes": ("min", "min"),
    "hours": ("h", "h"),
    "preview": ("Preview", "Prévisualiser"),
    "edit": ("Change", "Modifier"),
    # preview
    "preview_title": ("Check before sending", "Vérifier avant l'envoi"),
    "total_recipients": ("Recipients", "Destinataires"),
    "total_parts": ("SMS parts", "Parties SMS"),
    "eta": ("Estimated time", "Durée estimée"),
    "eta_unknown": ("no rate limit configured", "pas de limite de débit configurée"),
    "group_recipients": ("recipients", "destinataires"),
    "encoding": ("encoding", "codage"),
    "characters": ("characters", "caractères"),
    "parts_per_message": ("parts per message", "parties par message"),
    "warnings": ("Warnings", "Avertissements"),
    "approval_needed": (
        "A second person must approve it before anything is sent.",
        "Une deuxième personne doit l'approuver avant tout envoi.",
    ),
    "approval_not_needed": (
        "It starts as soon as you confirm.",
        "L'envoi commence dès votre confirmation.",
    ),
    "confirm_live_label": (
        "To send to the public, type SEND TO PUBLIC",
        "Pour envoyer au public, tapez ENVOI AU PUBLIC",
    ),
    "confirm_drill_label": (
        "To start the drill, type DRILL",
        "Pour lancer l'exercice, tapez EXERCICE",
    ),
    "submit_live": ("Send to the public", "Envoyer au public"),
    "submit_drill": ("Start the drill", "Lancer l'exercice"),
    "confirm_mismatch": (
        "The confirmation words do not match: nothing was sent. Type them exactly.",
        "Les mots de confirmation ne correspondent pas : rien n'a été envoyé. Tapez-les "
        "exactement.",
    ),
    "confirm_mismatch_approve": (
        "The confirmation words do not match: the approval was not recorded. Type them exactly.",
        "Les mots de confirmation ne correspondent pas : l'approbation n'a pas été enregistrée. "
        "Tapez-les exactement.",
    ),
    "confirm_mismatch_follow_up": (
        "The confirmation words do not match: the new message was not sent. Type them exactly.",
        "Les mots de confirmation ne correspondent pas : le nouveau message n'a pas été envoyé. "
        "Tapez-les exactement.",
    ),
    # broadcast page
    "broadcast": ("Broadcast", "Diffusion"),
    "follows": ("follows", "fait suite à"),
    "approved_by": ("Approved by", "Approuvée par"),
    "expires_at": ("Expires at", "Expire à"),
    "progress": ("Progress", "Progression"),
    "recorded": ("Recipients handled", "Destinataires traités"),
    "accepted": ("Recipients accepted by the SMSC", "Destinataires acceptés par le SMSC"),
    "failed": ("Recipients failed", "Destinataires en échec"),
    "possibly_twice": (
        "SMS parts possibly sent twice",
        "Parties de SMS peut-être envoyées deux fois",
    ),
    "delivered": (
        "Delivered, by receipt (SMS parts)",
        "Remises, selon les accusés (parties de SMS)",
    ),
    "undelivered": (
        "Not delivered, by receipt (SMS parts)",
        "Non remises, selon les accusés (parties de SMS)",
    ),
    "accepted_parts": ("SMS parts accepted by the SMSC", "Parties de SMS acceptées par le SMSC"),
    "awaited": (
        "Receipts still awaited (SMS parts)",
        "Accusés encore attendus (parties de SMS)",
    ),
    "receipts_arriving": (
        "Sending has ended; receipts are still arriving: this page stays live until they settle.",
        "L'envoi est fini ; des accusés arrivent encore : cette page reste en direct jusqu'à "
        "ce qu'ils soient tous là.",
    ),
    "waits_approval": (
        "Nothing is sent yet: it waits for approval by a second person.",
        "Rien n'est encore envoyé : la diffusion attend l'approbation d'une deuxième personne.",
    ),
    "waits_worker_none": (
        "Nothing is sent yet: no sending worker is running (nothing goes out until one runs).",
        "Rien n'est encore envoyé : aucun moteur d'envoi ne tourne (rien ne part tant qu'il n'y "
        "en a pas).",
    ),
    "waits_behind": (
        "Nothing is sent yet: queued in position {position}, behind broadcast {first} (more "
        "urgent broadcasts first: {listed}).",
        "Rien n'est encore envoyé : en file d'attente, position {position}, derrière la "
        "diffusion {first} (les plus urgentes d'abord : {listed}).",
    ),
    "waits_worker": (
        "Nothing is sent yet: waiting for a worker to pick it up.",
        "Rien n'est encore envoyé : en attente d'un moteur d'envoi.",
    ),
    "smsc_when_sending": (
        "SMSC figures appear while this broadcast sends.",
        "Les mesures SMSC s'affichent pendant l'envoi de cette diffusion.",
    ),
    "rate": ("Rate", "Débit"),
    "per_second": ("recipients/s", "destinataires/s"),
    "remaining": ("Time left", "Temps restant"),
    "smsc_health": ("SMSC health", "État des SMSC"),
    "smsc": ("SMSC", "SMSC"),
    "binds_up": ("binds up", "liaisons actives"),
    "inflight": ("in flight", "en cours"),
    "parts_per_s": ("parts/s", "parties/s"),
    "no_pool": (
        "This process runs no sending worker: no SMSC figures here.",
        "Ce processus n'a pas de moteur d'envoi : pas de mesures SMSC ici.",
    ),
    "live_updates": (
        "Updated live while this page is open.",
        "Mis à jour en direct tant que la page est ouverte.",
    ),
    "reload": ("Reload", "Recharger"),
    "texts": ("Texts", "Textes"),
    "history": ("History", "Historique"),
    "follow_ups": ("Follow-ups", "Suites"),
    "actions": ("Actions", "Actions"),
    "approve": ("Approve and send", "Approuver et envoyer"),
    "approve_title": ("Second-person approval", "Approbation par une deuxième personne"),
    "approve_intro": (
        "Read every text below first: approving sends them to every recipient.",
        "Lisez d'abord chaque texte ci-dessous : approuver les envoie à chaque destinataire.",
    ),
    "waiting_approval": (
        "Waiting for approval by a second person (an approver or an admin who did not create it).",
        "En attente d'approbation par une deuxième personne (un approbateur ou un administrateur "
        "qui ne l'a pas créée).",
    ),
    "you_created": (
        "You created this broadcast: a different person must approve it.",
        "Vous avez créé cette diffusion : une autre personne doit l'approuver.",
    ),
    "reason": ("Reason (optional, kept in the audit log)", "Motif (facultatif, tracé)"),
    "cancel": ("Cancel the broadcast", "Annuler la diffusion"),
    "cancel_confirm": (
        "Cancel this broadcast now? No new message will be submitted.",
        "Annuler cette diffusion maintenant ? Aucun nouveau message ne sera soumis.",
    ),
    "pause": ("Pause", "Suspendre"),
    "resume": ("Resume", "Reprendre"),
    "follow_up_title": ("Update or all-clear", "Mise à jour ou fin d'alerte"),
    "follow_up_intro": (
        "Sends a new message to the same areas; this broadcast stops if it is still sending.",
        "Envoie un nouveau message aux mêmes zones ; cette diffusion s'arrête si elle est "
        "encore en cours.",
    ),
    "reached_only": (
        "Only the recipients this broadcast reached",
        "Seulement les destinataires atteints par cette diffusion",
    ),
    "done_created": ("Broadcast created.", "Diffusion créée."),
    "done_approved": ("Approved: sending starts.", "Approuvée : l'envoi commence."),
    "done_cancelled": ("Cancelled.", "Annulée."),
    "done_paused": ("Paused.", "Suspendue."),
    "done_resumed": ("Resumed.", "Reprise."),
    "drill_report": ("Drill report", "Rapport d'exercice"),
    "after_action_report": ("After-action report", "Rapport après diffusion"),
    "not_reached_csv": (
        "Recipients not reached (CSV, approvers)",
        "Destinataires non atteints (CSV, approbateurs)",
    ),
    "drills_title": ("Drills and their reports", "Exercices et leurs rapports"),
    # states
    "state_draft": ("draft", "brouillon"),
    "state_pending_approval": ("waiting for approval", "en attente d'approbation"),
    "state_approved": ("approved, not sending yet", "approuvée, pas encore en envoi"),
    "state_running": ("sending", "envoi en cours"),
    "state_paused": ("paused", "suspendue"),
    "state_completed": ("completed", "terminée"),
    "state_cancelled": ("cancelled", "annulée"),
    "state_expired": ("expired", "expirée"),
    "state_failed": ("failed", "échouée"),
    # where a broadcast stands, said after an action on it was refused ({id}: its number)
    "now_draft": (
        "Broadcast {id} is a draft — nothing has been sent.",
        "La diffusion {id} est un brouillon — rien n'a été envoyé.",
    ),
    "now_pending_approval": (
        "Broadcast {id} is waiting for approval — nothing has been sent yet.",
        "La diffusion {id} attend son approbation — rien n'a encore été envoyé.",
    ),
    "now_approved": (
        "Broadcast {id} is approved — it is sending.",
        "La diffusion {id} est approuvée — elle est en cours d'envoi.",
    ),
    "now_running": (
        "Broadcast {id} is sending.",
        "La diffusion {id} est en cours d'envoi.",
    ),
    "now_paused": (
        "Broadcast {id} is paused — sending stopped until it is resumed.",
        "La diffusion {id} est suspendue — l'envoi reste arrêté jusqu'à sa reprise.",
    ),
    "now_completed": (
        "Broadcast {id} is completed — sending has finished.",
        "La diffusion {id} est terminée — l'envoi est fini.",
    ),
    "now_cancelled": (
        "Broadcast {id} is cancelled — nothing more will be sent.",
        "La diffusion {id} est annulée — plus rien ne sera envoyé.",
    ),
    "now_expired": (
        "Broadcast {id} has expired — nothing more will be sent.",
        "La diffusion {id} a expiré — plus rien ne sera envoyé.",
    ),
    "now_failed": (
        "Broadcast {id} failed — sending stopped; its progress below shows what went out.",
        "La diffusion {id} a échoué — l'envoi s'est arrêté ; sa progression ci-dessous montre "
        "ce qui est parti.",
    ),
    # audit
    "audit_title": ("Audit log", "Journal d'audit"),
    "col_at": ("When", "Quand"),
    "col_actor": ("Who", "Qui"),
    "col_action": ("Action", "Action"),
    "col_subject": ("Subject", "Objet"),
    "col_details": ("Details", "Détails"),
    "older": ("Older entries", "Entrées plus anciennes"),
    # errors
    "error": ("Error", "Erreur"),
    "refused": (
        "Refused: nothing was stored or sent",
        "Refusé : rien n'a été enregistré ni envoyé",
    ),
    "action_not_done": ("This action was not done", "Cette action n'a pas été faite"),
    "bad_form": (
        "This form could not be read: nothing was done. Reload the page and try again.",
        "Ce formulaire n'a pas pu être lu : rien n'a été fait. Rechargez la page et réessayez.",
    ),
    "forbidden_title": ("Not allowed", "Non autorisé"),
    "not_found_title": ("Not found", "Introuvable"),
    "csrf_failed": (
        "This form expired or did not come from this console. Reload the page and try again "
        "(cookies must be enabled).",
        "Ce formulaire a expiré ou ne vient pas de cette console. Rechargez la page et "
        "réessayez (les cookies doivent être activés).",
    ),
    "server_error": (
        "Unexpected error; the server log has the details under request id",
        "Erreur inattendue ; le journal du serveur a les détails sous l'identifiant de requête",
    ),
    "unavailable": (
        "The database does not answer: retry shortly.",
        "La base de données ne répond pas : réessayez dans un instant.",
    ),
    "back_home": ("Back to the broadcasts", "Retour aux diffusions"),
    # refusals by the commands, by error code (web/refusals.py)
    "refusal_general": (
        "The request was refused (the reason, as the server gave it, is below).",
        "La demande a été refusée (la raison donnée par le serveur figure ci-dessous).",
    ),
    "refusal_two_person_rule": (
        "You created this broadcast: a different person must approve it (two-person rule).",
        "Vous avez créé cette diffusion : une autre personne doit l'approuver (règle des deux "
        "personnes).",
    ),
    "refusal_invalid_state": (
        "This action does not apply to the broadcast as it stands now.",
        "Cette action ne s'applique pas à la diffusion dans son état actuel.",
    ),
    "refusal_forbidden": (
        "Your role does not allow this action.",
        "Votre rôle ne permet pas cette action.",
    ),
    "refusal_language_fallback": (
        "Some groups would get a text that is not (all) in their language: give each language "
        "its own text in the fields per language, or tick “Send even where a group gets a text "
        "not in its language”.",
        "Des groupes recevraient un texte qui n'est pas (entièrement) dans leur langue : "
        "donnez à chaque langue son texte dans les champs par langue, ou cochez « Envoyer même "
        "si un groupe reçoit un texte qui n'est pas dans sa langue ».",
    ),
    "refusal_placeholder_variables": (
        "An area still has the fictional reference value (a number nobody answers): type the "
        "real value in “Override the areas' own values”.",
        "Une zone a encore la valeur fictive de référence (un numéro où personne ne répond) : "
        "tapez la vraie valeur dans « Remplacer les valeurs propres aux zones ».",
    ),
    "refusal_fictional_number": (
        "A number typed is in the range reserved for fiction (01 99 00 xx xx, nobody answers "
        "it): type the real number.",
        "Un numéro saisi est dans la tranche réservée à la fiction (01 99 00 xx xx, personne "
        "n'y répond) : tapez le vrai numéro.",
    ),
    "refusal_unknown_area": (
        "An area code is unknown: check the codes typed.",
        "Un code de zone est inconnu : vérifiez les codes saisis.",
    ),
    "refusal_empty_target": (
        "No subscriber matches these areas.",
        "Aucun abonné ne correspond à ces zones.",
    ),
    "refusal_invalid_variable": (
        "A value typed is not accepted (blank, invisible characters, or not a phone number).",
        "Une valeur saisie n'est pas acceptée (vide, caractères invisibles, ou pas un numéro de "
        "téléphone).",
    ),
    "refusal_invalid_body": (
        "The form's values were refused.",
        "Les valeurs du formulaire ont été refusées.",
    ),
    "refusal_idempotency": (
        "This form was already sent with other values: reload the page and try again.",
        "Ce formulaire a déjà été envoyé avec d'autres valeurs : rechargez la page et réessayez.",
    ),
    "refusal_not_found": ("Not found.", "Introuvable."),
    "refusal_no_cells": (
        "No cell is known for this area or shape.",
        "Aucune cellule n'est connue pour cette zone ou cette forme.",
    ),
    "refusal_bad_shape": ("The shape drawn is not valid.", "La forme dessinée n'est pas valide."),
    "refusal_missing_variable": (
        "The template needs a value that is missing: fill in {names}.",
        "Le modèle a besoin d'une valeur manquante : remplissez {names}.",
    ),
}

CONFIRM_WORDS: Final[dict[str, dict[str, str]]] = {
    "live": {"en": "SEND TO PUBLIC", "fr": "ENVOI AU PUBLIC"},
    "drill": {"en": "DRILL", "fr": "EXERCICE"},
}
"""What must be typed to confirm: different words for a live send and for a drill (Hawaii
2018: one screen, one confirmation, a false alarm to a whole state)."""


def negotiate(accept_language: str | None, default: str) -> str:
    """The best of LANGUAGES for an Accept-Language header (q-values honoured)."""
    best, best_q = (default if default in LANGUAGES else LANGUAGES[0]), 0.0
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        q -= position * 1e-6  # earlier wins among equals
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


def translator(language: str) -> Callable[[str], str]:
    """`t("key")` in the chosen language; an unknown key is a bug, so it fails loudly."""
    index = LANGUAGES.index(language) if language in LANGUAGES else 0
    column = 1 if LANGUAGES[index] == "fr" else 0

    def t(key: str) -> str:
        return MESSAGES[key][column]

    return t


def state_now(language: str, broadcast_id: int, state: str) -> str:
    """Where broadcast `broadcast_id` stands, in plain words: said whenever an action on it was
    refused, so nobody mistakes "not done" for "never sent"."""
    return translator(language)(f"now_{state}").format(id=broadcast_id)


def confirm_words(kind: str, language: str) -> str:
    return CONFIRM_WORDS[kind][language]


def confirmation_matches(kind: str, typed: str) -> bool:
    """Typed words confirm `kind` in either language (case and spacing aside), and only it."""
    norm = " ".join(typed.split()).casefold()
    return any(norm == words.casefold() for words in CONFIRM_WORDS[kind].values())
