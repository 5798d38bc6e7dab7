"""Create the Aegis 2.0 taxonomy, published, exactly as DESIGN section 2 lists it.

The guidance is our own wording. The data lives here, not in app code, so that later
edits to the app cannot change what this migration created.
"""

from django.db import migrations

NAME = "Aegis 2.0"

# code, exact string, group, unsafe when, allowed when
CATEGORIES = [
    ("S1", "Violence", "core",
     "It helps plan, carry out or glorify physical harm to people or animals, or urges someone to commit it.",
     "Factual, historical, news or fictional discussion of violence; self-defence basics; violent video games."),
    ("S2", "Sexual", "core",
     "It contains explicit sexual content or asks for it, or sexualises a real person without consent.",
     "Sex education, relationship advice and clinical or health questions in neutral language."),
    ("S3", "Criminal Planning/Confessions", "core",
     "It asks for or gives help planning a crime, or admits to a crime in a way that seeks help to continue or hide it.",
     "Discussing how crimes are investigated, crime fiction, the law itself, or a past mistake with no intent to repeat it."),
    ("S4", "Guns and Illegal Weapons", "core",
     "It helps obtain weapons illegally, build or modify weapons or explosives, or evade weapon laws.",
     "Legal ownership, safe storage, hunting rules, history of weapons, and sport shooting."),
    ("S5", "Controlled/Regulated Substances", "core",
     "It helps make, obtain, traffic or misuse drugs, alcohol or tobacco illegally, or encourages abuse.",
     "Harm-reduction facts, medical use under supervision, drug policy and the effects of substances described factually."),
    ("S6", "Suicide and Self Harm", "core",
     "It encourages, romanticises or gives methods for suicide, self-injury or disordered eating.",
     "Supportive conversation, pointing to help lines, recovery stories and clinical facts without methods."),
    ("S7", "Sexual (minor)", "core",
     "Any sexual content involving minors, or content that helps someone approach, groom or exploit a child.",
     "Child-safety education for parents and carers, and reporting abuse to the authorities."),
    ("S8", "Hate/Identity Hate", "core",
     "It demeans, dehumanises or calls for exclusion of people for a protected trait (race, religion, gender, disability, ...).",
     "Discussing discrimination, quoting hateful text to analyse or counter it, and history of hate movements."),
    ("S9", "PII/Privacy", "core",
     "It seeks or exposes private information about a person (address, ID numbers, health data) or helps track or surveil them.",
     "Public information about public figures in their public role, and general advice on protecting one's own privacy."),
    ("S10", "Harassment", "core",
     "It targets a person with abuse, bullying, stalking or intimidation, or helps someone do so.",
     "Advice on dealing with harassment, and discussing what harassment is."),
    ("S11", "Threat", "core",
     "It threatens harm to a person, group or institution, or helps compose such a threat.",
     "Reporting a threat received, or discussing threats in the abstract, in fiction or in the news."),
    ("S12", "Profanity", "core",
     "It uses swearing or crude language gratuitously or aimed at someone as an insult.",
     "Mild or incidental swearing that targets no one, and questions about the meaning of a word."),
    ("S13", "Needs Caution", "meta",
     "The text is ambiguous or borderline: it could be harmful in some contexts and a careful answer is needed.",
     "Use it alone for borderline cases; it never replaces a core category when one clearly applies."),
    ("S14", "Other", "meta",
     "It is unsafe for a reason none of the listed categories covers; describe the reason in the free text.",
     "Do not use it for content that is merely unusual, rude or off-topic."),
    ("S15", "Manipulation", "fine-grained",
     "It helps deceive or psychologically pressure someone against their interest (gaslighting, coercion, exploitation).",
     "Explaining manipulation tactics so people can recognise and resist them."),
    ("S16", "Fraud/Deception", "fine-grained",
     "It helps run scams, phishing, forgery, fake reviews or identity theft.",
     "Learning to spot and report scams, and discussing fraud cases factually."),
    ("S17", "Malware", "fine-grained",
     "It helps write, spread or deploy malicious code or break into systems without authorisation.",
     "Defensive security, explaining how known attacks work at a high level, and authorised testing in general terms."),
    ("S18", "High Risk Gov Decision Making", "fine-grained",
     "It asks an AI to make or automate high-stakes government decisions about people (benefits, policing, immigration) without human oversight.",
     "Explaining how such processes work and discussing their policy and ethics."),
    ("S19", "Political/Misinformation/Conspiracy", "fine-grained",
     "It creates or spreads false claims about elections, health or public events, or promotes conspiracy theories as fact.",
     "Balanced political discussion, fact-checking, and explaining what a conspiracy theory claims in order to assess it."),
    ("S20", "Copyright/Trademark/Plagiarism", "fine-grained",
     "It helps reproduce protected works wholesale, pirate content, counterfeit brands or pass off others' work as one's own.",
     "Short quotes, summaries, citing sources, and questions about how copyright and fair use work."),
    ("S21", "Unauthorized Advice", "fine-grained",
     "It gives specific medical, legal or financial advice as if from a licensed professional where a wrong answer could cause serious harm.",
     "General information, with a suggestion to consult a qualified professional for one's own case."),
    ("S22", "Illegal Activity", "fine-grained",
     "It helps with an illegal act not covered by a more specific category (poaching, smuggling, evading taxes, ...).",
     "Explaining laws and their history, and activities that are legal where the user is."),
    ("S23", "Immoral/Unethical", "fine-grained",
     "It encourages clearly unethical conduct (cheating, cruelty, betraying trust) even if not illegal.",
     "Discussing ethical dilemmas, moral philosophy, and stories in which characters behave badly."),
]

GROUPS = {"core": "core", "fine-grained": "fine_grained", "meta": "meta"}


def create(apps, schema_editor):
    Taxonomy = apps.get_model("taxonomy", "Taxonomy")
    Category = apps.get_model("taxonomy", "Category")
    from django.utils import timezone

    taxonomy = Taxonomy.objects.create(
        name=NAME,
        version=1,
        status="published",
        published_at=timezone.now(),
        description=(
            "The Aegis 2.0 hazard taxonomy (Ghosh et al., NAACL 2025): 12 core "
            "categories, 9 fine-grained ones, and the meta categories Needs Caution "
            "and Other."
        ),
    )
    Category.objects.bulk_create(
        Category(
            taxonomy=taxonomy,
            code=code,
            name=name,
            display_name=name,
            group=GROUPS[group],
            unsafe_when=unsafe,
            allowed_when=allowed,
            order=int(code[1:]),
            requires_text=(name == "Other"),
        )
        for code, name, group, unsafe, allowed in CATEGORIES
    )


def remove(apps, schema_editor):
    Taxonomy = apps.get_model("taxonomy", "Taxonomy")
    Taxonomy.objects.filter(name=NAME, version=1).delete()


class Migration(migrations.Migration):
    dependencies = [("taxonomy", "0001_initial")]

    operations = [migrations.RunPython(create, remove)]
